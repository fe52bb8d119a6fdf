// Package sqldriver is a database/sql driver over SPI: Go data code written
// for database/sql (and for jackc/pgx's stdlib driver) runs inside a pggo
// background worker, in the worker's own backend, with no connection and no
// network.
//
//	import _ "github.com/pggo/pggo/spi/sqldriver" // registers "pggo-spi"
//
//	db, err := sql.Open("pggo-spi", "") // once, at the start of the worker
//	ctx := context.Background()         // a worker has no request context (bgworker.Context() once it exists)
//	...
//	err = bgworker.Transaction(func() error {
//		_, err := db.ExecContext(ctx, "INSERT INTO events(kind, at) VALUES ($1, $2)", "start", time.Now())
//		return err
//	})
//
// # sqlx
//
// sqlx chooses its placeholders (for Rebind, In, NamedExec, ...) from the
// driver name it is given, and does not know "pggo-spi": it would write ?,
// which PostgreSQL rejects. Give it a name it maps to $1, or register one:
//
//	db := sqlx.NewDb(sqldriver.OpenDB(), "pgx") // the driver is still pggo-spi
//	// or, once: sqlx.BindDriver(sqldriver.DriverName, sqlx.DOLLAR)
//	//           db := sqlx.NewDb(sqldriver.OpenDB(), sqldriver.DriverName)
//
// # Where and when
//
// Use the *sql.DB only on the worker's own goroutine (the one running its
// MainFunc), inside bgworker.Transaction: every statement runs in the
// worker's current transaction, as with package spi. From another goroutine
// a call fails with pggo.ErrWrongThread; outside a transaction it fails
// with an error saying SPI needs a transaction. Nothing is committed when a statement returns:
// bgworker.Transaction commits (or rolls back) when its function returns.
//
// # One session
//
// The worker has one session, so every connection database/sql opens with
// this driver is a handle on that same session, not a separate one:
// database/sql opens a second handle when a statement runs through db while
// a Rows or Tx holds the first, and that works (a statement can run while a
// cursor is open). It means that a statement run through db while a Tx is
// open runs inside that Tx's savepoint too: keep a Tx's statements on the Tx.
// Do not limit the pool with db.SetMaxOpenConns(1): database/sql would then
// wait, for ever unless the context has a deadline, for the one connection
// that an open Rows or Tx of the same goroutine holds.
//
// # Transactions
//
// db.BeginTx opens a savepoint (spi.BeginSubtransaction) inside the
// worker's transaction. Tx.Rollback rolls back to it; Tx.Commit releases it
// into the worker's transaction, which still decides whether the work is
// committed. A failed statement inside a Tx loses only the Tx (its later
// statements fail with SQLSTATE 25P02 and Commit returns an error, as on a
// client connection); the worker's transaction goes on. A failed statement
// outside a Tx rolls back the worker's whole transaction, as spi does. End
// every Tx (defer tx.Rollback()) inside the bgworker.Transaction that began
// it: that transaction cannot commit while a savepoint is open. The
// isolation level and read/write mode are the worker transaction's: BeginTx
// returns an error for any sql.TxOptions other than the defaults.
//
// # Contexts
//
// Contexts are checked before every call. A statement that has started
// cannot be interrupted from Go (PostgreSQL's statement_timeout can). When
// the context of a Tx is cancelled, database/sql rolls the Tx back from
// another goroutine, which may not call PostgreSQL: the driver rolls the
// savepoint back at its next call on the worker's goroutine instead (or the
// worker's transaction fails to commit if there is none).
//
// # Parameters and values
//
// Placeholders are $1, $2, ...; arguments are always bound, never spliced
// into the SQL. Statements with arguments are prepared once and cached
// (spi.Prepare, up to 256 statements per worker, kept across transactions),
// as pgx does: PostgreSQL infers the parameter types from the statement and
// the driver converts Go values to them, so a float64 feeds a numeric column
// and a time.Time a date one. Arguments are what spi accepts: nil, integers
// of every size, floats, bool, string, []byte, time.Time, pointers to them,
// driver.Valuer, pgtype values and slices (as arrays). Named arguments
// (sql.Named) and sql.Out are refused. Statements without arguments run as
// they are and may hold several commands separated by semicolons.
//
// Rows give database/sql int64 (int2, int4, int8, oid), float64, bool,
// string, []byte (bytea, json, jsonb, xml), time.Time (date, timestamp,
// timestamptz; the strings "infinity" and "-infinity" for infinities) and nil;
// other types (numeric, uuid, interval, arrays, ...) as their text, which
// database/sql converts on Scan (numeric into float64 or string, for
// example). Column types are named as pgx's stdlib driver names them
// ("INT8", "TEXT", "TIMESTAMPTZ", ...). sql.ErrNoRows means no row, as usual
// (spi.ErrNoRows is the same error). Result.LastInsertId is not supported:
// use INSERT ... RETURNING.
package sqldriver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
	"github.com/pggo/pggo/spi"
)

// DriverName is the name the driver is registered under with database/sql.
const DriverName = "pggo-spi"

func init() {
	sql.Register(DriverName, Driver{})
}

// OpenDB returns a *sql.DB that runs its statements through SPI in the
// calling worker. It is sql.Open(DriverName, "") without the error, which
// cannot happen. Opening does not touch PostgreSQL.
func OpenDB() *sql.DB { return sql.OpenDB(connector{}) }

// Driver is the database/sql driver registered as "pggo-spi". The data source
// name must be empty: the driver always uses the calling worker's session.
type Driver struct{}

// Open returns a new handle on the worker's session.
func (d Driver) Open(name string) (driver.Conn, error) {
	c, err := d.OpenConnector(name)
	if err != nil {
		return nil, err
	}
	return c.Connect(context.Background())
}

// OpenConnector checks the data source name, which must be empty.
func (Driver) OpenConnector(name string) (driver.Connector, error) {
	if name != "" {
		return nil, fmt.Errorf("pggo-spi: the data source name must be empty (got %q): the driver always uses the worker's own session", name)
	}
	return connector{}, nil
}

// connector hands out handles. database/sql may call it from its own
// goroutines, so it must not call PostgreSQL: a handle is only a value.
type connector struct{}

func (connector) Connect(ctx context.Context) (driver.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &conn{}, nil
}

func (connector) Driver() driver.Driver { return Driver{} }

// conn is a handle on the worker's session. It holds no state of its own:
// what a session has (prepared plans, savepoints) is package-level because
// the process has exactly one session.
type conn struct{}

var (
	_ driver.Conn               = (*conn)(nil)
	_ driver.ConnPrepareContext = (*conn)(nil)
	_ driver.ConnBeginTx        = (*conn)(nil)
	_ driver.ExecerContext      = (*conn)(nil)
	_ driver.QueryerContext     = (*conn)(nil)
	_ driver.Pinger             = (*conn)(nil)
	_ driver.NamedValueChecker  = (*conn)(nil)
	_ driver.SessionResetter    = (*conn)(nil)
	_ driver.Validator          = (*conn)(nil)
)

// enter is the gate of every call that reaches PostgreSQL: it refuses other
// goroutines before any shared state is touched, checks the context, and
// does the work other goroutines handed over (see later).
func enter(ctx context.Context) error {
	if !pg.OnWorkerThread() {
		if !pg.Available() {
			return pg.ErrNotInPostgres
		}
		return fmt.Errorf("pggo-spi: %w", pggo.ErrWrongThread)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	maintain()
	return nil
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

// PrepareContext plans query once (spi.Prepare); the plan is kept across
// transactions until the statement is closed.
func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := enter(ctx); err != nil {
		return nil, err
	}
	s, err := spi.Prepare(query)
	if err != nil {
		return nil, err
	}
	return &stmt{s: s, types: s.ParamTypes()}, nil
}

// Close has nothing to release: plans and savepoints belong to the session.
func (c *conn) Close() error { return nil }

func (c *conn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *conn) ExecContext(ctx context.Context, query string, nargs []driver.NamedValue) (driver.Result, error) {
	if err := enter(ctx); err != nil {
		return nil, err
	}
	if len(nargs) == 0 {
		n, err := spi.Exec(query)
		if err != nil {
			return nil, err
		}
		return driver.RowsAffected(n), nil
	}
	s, err := cachedStmt(query)
	if err != nil {
		return nil, err
	}
	return s.exec(nargs)
}

func (c *conn) QueryContext(ctx context.Context, query string, nargs []driver.NamedValue) (driver.Rows, error) {
	if err := enter(ctx); err != nil {
		return nil, err
	}
	if len(nargs) == 0 {
		r, err := spi.Query(query)
		if err != nil {
			return nil, err
		}
		return newRows(r), nil
	}
	s, err := cachedStmt(query)
	if err != nil {
		return nil, err
	}
	return s.query(nargs)
}

// Ping reports whether statements can run now: on the worker's goroutine,
// inside bgworker.Transaction, and not after a failed statement.
func (c *conn) Ping(ctx context.Context) error {
	if err := enter(ctx); err != nil {
		return err
	}
	_, err := spi.Exec("SELECT 1")
	return err
}

// CheckNamedValue accepts every value as it is, so that spi's own parameter
// encoding sees it: database/sql's default conversion would turn an int32
// into an int64, a time.Duration into an int64 and reject slices, pgtype
// values and other types spi encodes itself.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if nv.Name != "" {
		return fmt.Errorf("pggo-spi: named argument %q: PostgreSQL parameters are positional, use $1, $2, ...", nv.Name)
	}
	if _, ok := nv.Value.(sql.Out); ok {
		return errors.New("pggo-spi: sql.Out arguments are not supported")
	}
	return nil
}

// ResetSession has nothing to reset: the session is the worker's, and what
// a handle did belongs to the worker's transaction.
func (c *conn) ResetSession(ctx context.Context) error { return nil }

// IsValid is always true: a handle cannot break. Together with
// ResetSession it lets database/sql keep the handle after a Tx is rolled
// back because its context was cancelled.
func (c *conn) IsValid() bool { return true }

// namedArgs turns database/sql's arguments into spi's, in $n order.
func namedArgs(nargs []driver.NamedValue) []any {
	args := make([]any, len(nargs))
	for i, nv := range nargs {
		args[i] = nv.Value
	}
	return args
}
