package spi

import (
	"database/sql/driver"
	"errors"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/internal/pg"
)

// Stmt is a prepared statement: parsed and planned once (SPI_prepare), kept
// across transactions (SPI_keepplan) until Close. Executing it skips parse
// analysis and, for generic plans, planning.
type Stmt struct {
	sql   string
	types []pggo.Oid
	plan  *pg.Plan // nil once closed
}

// Prepare prepares sql. paramTypes fix the types of $1, $2, ...; parameters
// not given (or given as 0) take the type PostgreSQL infers from the
// statement, as with Exec. It must run inside bgworker.Transaction, and the
// statement can then be used in later transactions too.
func Prepare(sql string, paramTypes ...pggo.Oid) (*Stmt, error) {
	return prepare(sql, paramTypes)
}

// NumParams is the number of parameters the statement takes.
func (s *Stmt) NumParams() int { return len(s.types) }

// ParamTypes are the types of the parameters, as PostgreSQL settled them.
func (s *Stmt) ParamTypes() []pggo.Oid { return append([]pggo.Oid(nil), s.types...) }

// Exec runs the statement and returns the number of rows it processed.
func (s *Stmt) Exec(args ...any) (int64, error) { return s.exec(args) }

// Query runs the statement and returns its rows, streamed as Query does.
func (s *Stmt) Query(args ...any) (*Rows, error) { return s.query(args) }

// QueryRow runs the statement expecting at most one row, without a cursor
// (as spi.QueryRow does).
func (s *Stmt) QueryRow(args ...any) *Row {
	params, err := s.params(args)
	if err != nil {
		return &Row{err: err}
	}
	return queryRow(s.plan, "", params, len(args))
}

// ExecBatch runs the statement once for every row of arguments, in one
// call into PostgreSQL instead of one per row, and returns the number of
// rows all runs processed together. Each row must have NumParams values.
// If one run fails, the error is that run's (and, as for Exec, the
// transaction or savepoint is rolled back).
func (s *Stmt) ExecBatch(rows [][]any) (int64, error) { return s.execBatch(rows) }

// Close frees the plan. It is safe to call more than once.
func (s *Stmt) Close() error { return s.close() }

// ErrStmtClosed is returned by a Stmt used after Close.
var ErrStmtClosed = errors.New("spi: statement is closed")

// Savepoint runs fn in a subtransaction. If fn returns an error or panics,
// or a statement inside it fails, only the subtransaction is rolled back:
// the enclosing transaction goes on with what it did before, and Savepoint
// returns the error. It must run inside bgworker.Transaction; savepoints nest.
func Savepoint(fn func() error) error { return savepoint(fn) }

// Subtransaction is an explicitly opened subtransaction, for code that
// cannot use the callback form of Savepoint (such as a database/sql driver).
// Release or roll it back before the enclosing one ends, innermost first.
type Subtransaction struct {
	level int
	done  bool
}

// BeginSubtransaction opens a subtransaction (a savepoint).
func BeginSubtransaction() (*Subtransaction, error) { return beginSub() }

// Release commits the subtransaction into its parent. If a statement in it
// failed, it was already rolled back and Release returns that error.
func (s *Subtransaction) Release() error { return s.end(true) }

// Rollback rolls the subtransaction back.
func (s *Subtransaction) Rollback() error { return s.end(false) }

// ColumnType describes a result column.
type ColumnType struct {
	Name string
	OID  pggo.Oid
}

// ColumnTypes describes the result's columns.
func (r *Rows) ColumnTypes() []ColumnType {
	out := make([]ColumnType, len(r.res.Columns))
	for i, c := range r.res.Columns {
		out[i] = ColumnType{Name: c.Name, OID: pggo.Oid(c.Type)}
	}
	return out
}

// DriverValues copies the current row into dest as database/sql/driver
// values (for database/sql drivers).
func (r *Rows) DriverValues(dest []driver.Value) error {
	if r.closed || r.row < 0 || r.row >= r.res.NumRows {
		return errors.New("spi: DriverValues called without a current row (call Next first)")
	}
	vals := r.values()
	for i := range dest {
		if i >= len(vals) {
			break
		}
		v, err := vals[i].DriverValue()
		if err != nil {
			return err
		}
		dest[i] = v
	}
	return nil
}
