// Command testsql is the pggo extension TestSQLDriver loads: one static
// worker that uses database/sql over SPI (package spi/sqldriver) the way a
// small repository would, and records what it saw in the table
// sqldriver_results(key, value), which the test reads with an ordinary
// client. Observations are written with package spi, in transactions of
// their own, so that a driver failure is still reported.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
	_ "github.com/pggo/pggo/spi/sqldriver"
)

func init() {
	bgworker.RegisterFunction("testsql_main", sqlMain)
	pggo.OnInit(func() error {
		return bgworker.New("pggo sqldriver test").
			SetType("pggo_test_sqldriver").
			SetFunction("testsql_main").
			EnableSPIAccess().
			Load()
	})
}

// account is a row of accounts, scanned field by field as repository code
// written for database/sql does.
type account struct {
	ID          int64
	Name        string
	Balance     float64 // numeric, converted by database/sql from its text
	BalanceText string  // the same numeric as a string
	Created     time.Time
	Note        sql.NullString
}

// querier is what *sql.DB and *sql.Tx share: repository functions take
// either.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func insertAccount(ctx context.Context, q querier, a *account) error {
	return q.QueryRowContext(ctx,
		"INSERT INTO accounts(name, balance, created, note) VALUES ($1, $2, $3, $4) RETURNING id",
		a.Name, a.Balance, a.Created, a.Note).Scan(&a.ID)
}

func getAccount(ctx context.Context, q querier, name string) (account, error) {
	var a account
	err := q.QueryRowContext(ctx,
		"SELECT id, name, balance, balance::text, created, note FROM accounts WHERE name = $1", name).
		Scan(&a.ID, &a.Name, &a.Balance, &a.BalanceText, &a.Created, &a.Note)
	return a, err
}

func countNamed(ctx context.Context, q querier, name string) int {
	var n int
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM accounts WHERE name = $1", name).Scan(&n); err != nil {
		return -1
	}
	return n
}

func (a account) String() string {
	return fmt.Sprintf("id=%d name=%s balance=%v text=%s created=%s note=%v/%v",
		a.ID, a.Name, a.Balance, a.BalanceText, a.Created.UTC().Format(time.RFC3339Nano), a.Note.String, a.Note.Valid)
}

// created is the fixed timestamp the accounts are created at.
var created = time.Date(2024, 5, 17, 8, 30, 15, 123456000, time.UTC)

func sqlMain(pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	if err := bgworker.Transaction(func() error {
		_, err := spi.Exec("CREATE TABLE IF NOT EXISTS sqldriver_results(key text, value text, at timestamptz DEFAULT clock_timestamp())")
		return err
	}); err != nil {
		return err
	}
	db, err := sql.Open("pggo-spi", "")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()

	// Each step runs in its own bgworker.Transaction unless it says otherwise.
	steps := []struct {
		key string
		fn  func(context.Context, *sql.DB) (string, error)
	}{
		{"schema", schema},
		{"ping outside a transaction", pingOutside},
		{"insert", insert},
		{"select", selectAccounts},
		{"column types", columnTypes},
		{"exec while rows are open", execWhileRows},
		{"tx rollback", txRollback},
		{"tx commit", txCommit},
		{"unique violation in tx", uniqueViolation},
		{"commit after a failed statement", commitAfterFailure},
		{"prepared statement 100 times", prepared},
		{"arguments", arguments},
		{"context", contexts},
		{"tx with open rows", txWithOpenRows},
		{"other goroutine", otherGoroutine},
		{"tx options", txOptions},
		{"outer rollback", outerRollback},
		{"throughput", throughput},
	}
	for _, s := range steps {
		out, err := s.fn(ctx, db)
		if err != nil {
			out = "ERR " + errText(err)
		}
		if err := record(s.key, out); err != nil {
			return err
		}
	}
	if err := record("done", "yes"); err != nil {
		return err
	}
	// Last: these leave a Tx open when a worker transaction ends, which the
	// loader has mishandled (the worker ended with FATAL or was wedged).
	out, err := staleCancel(ctx, db)
	if err != nil {
		out = "ERR " + errText(err)
	}
	if err := record("cancelled tx of an earlier transaction", out); err != nil {
		return err
	}
	leakedTx(ctx, db)
	for bgworker.WaitLatch(time.Minute) {
	}
	return nil
}

// record stores one observation, in its own transaction.
func record(key, value string) error {
	return bgworker.Transaction(func() error {
		_, err := spi.Exec("INSERT INTO sqldriver_results(key, value) VALUES ($1, $2)", key, value)
		return err
	})
}

func errText(err error) string {
	var pe *pggo.Error
	if errors.As(err, &pe) {
		return pe.SQLState + " " + pe.Message
	}
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// sqlState is err's SQLSTATE, or its text if it has none.
func sqlState(err error) string {
	var pe *pggo.Error
	if errors.As(err, &pe) {
		return pe.SQLState
	}
	return errText(err)
}

// inTx runs fn in a worker transaction and returns what it observed.
func inTx(fn func() (string, error)) (string, error) {
	var out string
	err := bgworker.Transaction(func() error {
		var err error
		out, err = fn()
		return err
	})
	return out, err
}

func schema(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		if _, err := db.ExecContext(ctx, `CREATE TABLE accounts(
			id bigserial PRIMARY KEY, name text UNIQUE, balance numeric, created timestamptz, note text);
			CREATE TABLE visits(account_id bigint)`); err != nil {
			return "", err
		}
		return "ping=" + errText(db.PingContext(ctx)), nil
	})
}

func pingOutside(ctx context.Context, db *sql.DB) (string, error) {
	return errText(db.PingContext(ctx)), nil
}

func insert(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		alice := account{Name: "alice", Balance: 100.25, Created: created, Note: sql.NullString{String: "vip", Valid: true}}
		if err := insertAccount(ctx, db, &alice); err != nil {
			return "", err
		}
		res, err := db.ExecContext(ctx, "INSERT INTO accounts(name, balance, created, note) VALUES ($1, $2, $3, $4)",
			"bob", 0, created.Add(time.Hour), sql.NullString{})
		if err != nil {
			return "", err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return "", err
		}
		_, idErr := res.LastInsertId()
		return fmt.Sprintf("alice=%d bob rows=%d lastinsertid error=%v", alice.ID, n, idErr != nil), nil
	})
}

func selectAccounts(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		alice, err := getAccount(ctx, db, "alice")
		if err != nil {
			return "", err
		}
		bob, err := getAccount(ctx, db, "bob")
		if err != nil {
			return "", err
		}
		_, err = getAccount(ctx, db, "nobody")
		return fmt.Sprintf("%v | %v | missing: sql.ErrNoRows=%v spi.ErrNoRows=%v",
			alice, bob, errors.Is(err, sql.ErrNoRows), errors.Is(err, spi.ErrNoRows)), nil
	})
}

func columnTypes(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		rows, err := db.QueryContext(ctx, `SELECT id, name, balance, created, note, created::date,
			ARRAY[1, 2], '{"k": [1]}'::jsonb FROM accounts WHERE id = $1`, int32(1))
		if err != nil {
			return "", err
		}
		defer rows.Close()
		cts, err := rows.ColumnTypes()
		if err != nil {
			return "", err
		}
		var names []string
		for _, ct := range cts {
			names = append(names, ct.DatabaseTypeName())
		}
		if !rows.Next() {
			return "", fmt.Errorf("no row: %v", rows.Err())
		}
		var a account
		var day time.Time
		var arr string
		var doc json.RawMessage
		if err := rows.Scan(&a.ID, &a.Name, &a.Balance, &a.Created, &a.Note, &day, &arr, &doc); err != nil {
			return "", err
		}
		return fmt.Sprintf("%s | day=%s arr=%s json=%s scantype=%v",
			strings.Join(names, " "), day.Format(time.DateOnly), arr, doc, cts[0].ScanType()), rows.Err()
	})
}

// execWhileRows runs statements through db while iterating rows: database/sql
// opens a second handle on the same session for them.
func execWhileRows(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		rows, err := db.QueryContext(ctx, "SELECT id, name FROM accounts ORDER BY name")
		if err != nil {
			return "", err
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var id int64
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				return "", err
			}
			names = append(names, name)
			if _, err := db.ExecContext(ctx, "INSERT INTO visits(account_id) VALUES ($1)", id); err != nil {
				return "", err
			}
		}
		if err := rows.Err(); err != nil {
			return "", err
		}
		var visits int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM visits").Scan(&visits); err != nil {
			return "", err
		}
		return fmt.Sprintf("names=%s visits=%d", strings.Join(names, ","), visits), nil
	})
}

func txRollback(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		if err := insertAccount(ctx, tx, &account{Name: "carol", Balance: 1, Created: created}); err != nil {
			return "", err
		}
		inside := countNamed(ctx, tx, "carol")
		rb := tx.Rollback()
		commit := tx.Commit()
		return fmt.Sprintf("inside=%d rollback=%s after=%d commit after rollback=%v",
			inside, errText(rb), countNamed(ctx, db, "carol"), errors.Is(commit, sql.ErrTxDone)), nil
	})
}

func txCommit(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		tx, err := db.BeginTx(ctx, &sql.TxOptions{})
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		if err := insertAccount(ctx, tx, &account{Name: "dave", Balance: 2.5, Created: created}); err != nil {
			return "", err
		}
		c := tx.Commit()
		return fmt.Sprintf("commit=%s after=%d", errText(c), countNamed(ctx, db, "dave")), nil
	})
}

// uniqueViolation: a statement failing inside a Tx loses the Tx only; the
// worker's transaction commits what it did before and after.
func uniqueViolation(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		if err := insertAccount(ctx, db, &account{Name: "erin", Created: created}); err != nil {
			return "", err
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		if err := insertAccount(ctx, tx, &account{Name: "frank", Created: created}); err != nil {
			return "", err
		}
		dup := insertAccount(ctx, tx, &account{Name: "alice", Created: created})
		var pe *pggo.Error
		isPgErr := errors.As(dup, &pe)
		_, next := tx.ExecContext(ctx, "SELECT 1")
		rb := tx.Rollback()
		grace := insertAccount(ctx, db, &account{Name: "grace", Created: created})
		return fmt.Sprintf("dup=%s (*pggo.Error %v) next=%s rollback=%s grace=%s frank=%d erin=%d",
			errText(dup), isPgErr, errText(next), errText(rb), errText(grace),
			countNamed(ctx, db, "frank"), countNamed(ctx, db, "erin")), nil
	})
}

func commitAfterFailure(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		if err := insertAccount(ctx, tx, &account{Name: "ivan", Created: created}); err != nil {
			return "", err
		}
		dup := insertAccount(ctx, tx, &account{Name: "alice", Created: created})
		c := tx.Commit()
		heidi := insertAccount(ctx, db, &account{Name: "heidi", Created: created})
		return fmt.Sprintf("dup=%s commit=%s heidi=%s ivan=%d",
			sqlState(dup), sqlState(c), errText(heidi), countNamed(ctx, db, "ivan")), nil
	})
}

// prepared uses one prepared INSERT and one prepared SELECT 100 times each,
// then the SELECT again in a later transaction (the plan is kept).
func prepared(ctx context.Context, db *sql.DB) (string, error) {
	ins, err := db.PrepareContext(ctx, "INSERT INTO accounts(name, balance, created) VALUES ($1, $2, $3)")
	if err == nil {
		return "", errors.New("Prepare outside a transaction succeeded")
	}
	var sel *sql.Stmt
	out, err := inTx(func() (string, error) {
		ins, err = db.PrepareContext(ctx, "INSERT INTO accounts(name, balance, created) VALUES ($1, $2, $3)")
		if err != nil {
			return "", err
		}
		defer ins.Close()
		sel, err = db.PrepareContext(ctx, "SELECT balance, created FROM accounts WHERE name = $1")
		if err != nil {
			return "", err
		}
		var affected int64
		for i := 0; i < 100; i++ {
			// float64 into numeric: the driver fits it to the plan's type.
			res, err := ins.ExecContext(ctx, fmt.Sprintf("p%03d", i), float64(i)*1.5, created.Add(time.Duration(i)*time.Hour))
			if err != nil {
				return "", err
			}
			n, _ := res.RowsAffected()
			affected += n
		}
		var sum float64
		var last time.Time
		for i := 0; i < 100; i++ {
			var b float64
			if err := sel.QueryRowContext(ctx, fmt.Sprintf("p%03d", i)).Scan(&b, &last); err != nil {
				return "", err
			}
			sum += b
		}
		var n int
		var total string
		if err := db.QueryRowContext(ctx, "SELECT count(*), sum(balance)::text FROM accounts WHERE name LIKE 'p%'").Scan(&n, &total); err != nil {
			return "", err
		}
		return fmt.Sprintf("affected=%d scanned sum=%v last=%s count=%d sum=%s",
			affected, sum, last.UTC().Format(time.RFC3339), n, total), nil
	})
	if err != nil {
		return "", err
	}
	defer sel.Close()
	later, err := inTx(func() (string, error) {
		var b float64
		var c time.Time
		err := sel.QueryRowContext(ctx, "p099").Scan(&b, &c)
		return fmt.Sprint(b), err
	})
	return out + " next transaction=" + later, err
}

// arguments passes values the way pgx users do; parameter types come from
// the statement.
func arguments(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		var out []string
		check := func(what string, query string, dest any, args ...any) {
			err := db.QueryRowContext(ctx, query, args...).Scan(dest)
			if err != nil {
				out = append(out, what+"=ERR "+errText(err))
				return
			}
			switch d := dest.(type) {
			case *time.Time:
				out = append(out, what+"="+d.Format(time.DateOnly))
			default:
				out = append(out, fmt.Sprintf("%s=%v", what, reflectValue(dest)))
			}
		}
		var i int
		var s string
		var b bool
		var t time.Time
		var f float64
		type status string
		check("int32", "SELECT $1::int4 + 1", &i, int32(41))
		check("date", "SELECT $1::date", &t, time.Date(2024, 2, 29, 23, 0, 0, 0, time.FixedZone("X", -8*3600)))
		check("json", "SELECT $1::jsonb ->> 'a'", &s, []byte(`{"a": "x"}`))
		check("any", "SELECT count(*) FROM accounts WHERE name = ANY($1)", &i, []string{"alice", "bob", "zed"})
		check("nil", "SELECT $1::text IS NULL", &b, (*string)(nil))
		check("numeric", "SELECT ($1::numeric * 2)::text", &s, 1.25)
		check("named type", "SELECT count(*) FROM accounts WHERE name = $1", &i, status("alice"))
		check("uint64", "SELECT $1::int8 - 1", &i, uint64(10))
		check("untyped", "SELECT $1", &i, 7)
		check("float", "SELECT $1::float8 / 4", &f, 1)
		check("interval", "SELECT extract(epoch FROM $1::interval)::int", &i, 90*time.Second)
		res, err := db.ExecContext(ctx, "CREATE TEMP TABLE tmp(x int); INSERT INTO tmp VALUES (1), (2)")
		if err != nil {
			return "", err
		}
		n, _ := res.RowsAffected()
		out = append(out, fmt.Sprintf("multi=%d", n))
		return strings.Join(out, " "), nil
	})
}

func reflectValue(p any) any {
	switch d := p.(type) {
	case *int:
		return *d
	case *string:
		return *d
	case *bool:
		return *d
	case *float64:
		return *d
	}
	return p
}

// contexts: a cancelled context stops a call before it starts, and a Tx
// whose context is cancelled is rolled back, whether database/sql's goroutine
// or the worker's next call gets there first.
func contexts(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		done, cancel := context.WithCancel(ctx)
		cancel()
		_, pre := db.ExecContext(done, "INSERT INTO accounts(name) VALUES ('never')")

		txCtx, cancel := context.WithCancel(ctx)
		tx, err := db.BeginTx(txCtx, nil)
		if err != nil {
			cancel()
			return "", err
		}
		if err := insertAccount(ctx, tx, &account{Name: "judy", Created: created}); err != nil {
			cancel()
			return "", err
		}
		cancel()
		commit := tx.Commit()
		judy := countNamed(ctx, db, "judy") // rolled back by this call, at the latest

		txCtx, cancel = context.WithCancel(ctx)
		tx, err = db.BeginTx(txCtx, nil)
		if err != nil {
			cancel()
			return "", err
		}
		if err := insertAccount(ctx, tx, &account{Name: "ken", Created: created}); err != nil {
			cancel()
			return "", err
		}
		cancel()
		time.Sleep(100 * time.Millisecond) // database/sql's goroutine calls Rollback
		ken := countNamed(ctx, db, "ken")
		after := insertAccount(ctx, db, &account{Name: "laura", Created: created})
		return fmt.Sprintf("cancelled before=%v commit=%v judy=%d ken=%d after=%s",
			errors.Is(pre, context.Canceled), errors.Is(commit, context.Canceled), judy, ken, errText(after)), nil
	})
}

// staleCancel: a Tx whose context is cancelled after its worker transaction
// ended is rolled back by database/sql from its goroutine; the driver must
// not then roll back a savepoint of the next transaction at the same level.
func staleCancel(ctx context.Context, db *sql.DB) (string, error) {
	txCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := bgworker.Transaction(func() error {
		tx, err := db.BeginTx(txCtx, nil)
		if err != nil {
			return err
		}
		if err := insertAccount(ctx, tx, &account{Name: "olivia", Created: created}); err != nil {
			return err
		}
		return errors.New("leaving with the Tx open")
	})
	cancel()
	time.Sleep(100 * time.Millisecond) // database/sql's goroutine calls Rollback
	var inner error
	second := bgworker.Transaction(func() error {
		inner = spi.Savepoint(func() error {
			return insertAccount(ctx, db, &account{Name: "oscar", Created: created})
		})
		return inner
	})
	var n int
	third := bgworker.Transaction(func() error {
		n = countNamed(ctx, db, "oscar") + countNamed(ctx, db, "olivia")
		return nil
	})
	return fmt.Sprintf("first=%s second=%s third=%s oscar+olivia=%d", errText(first), errText(second), errText(third), n), nil
}

// txWithOpenRows commits a Tx whose rows are still open: database/sql closes
// them from its own goroutine first.
func txWithOpenRows(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return "", err
		}
		defer tx.Rollback()
		if err := insertAccount(ctx, tx, &account{Name: "mallory", Created: created}); err != nil {
			return "", err
		}
		rows, err := tx.QueryContext(ctx, "SELECT name FROM accounts ORDER BY name")
		if err != nil {
			return "", err
		}
		rows.Next()
		c := tx.Commit()
		rows.Close()
		return fmt.Sprintf("commit=%s mallory=%d", errText(c), countNamed(ctx, db, "mallory")), nil
	})
}

func otherGoroutine(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		res := make(chan error)
		go func() {
			_, err := db.ExecContext(ctx, "INSERT INTO accounts(name) VALUES ($1)", "from another goroutine")
			res <- err
		}()
		err := <-res
		return fmt.Sprintf("ErrWrongThread=%v then=%s", errors.Is(err, pggo.ErrWrongThread), errText(db.PingContext(ctx))), nil
	})
}

func txOptions(ctx context.Context, db *sql.DB) (string, error) {
	return inTx(func() (string, error) {
		_, iso := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable})
		_, ro := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		return fmt.Sprintf("serializable=%v | read-only=%v | ping=%s", iso, ro, errText(db.PingContext(ctx))), nil
	})
}

// outerRollback: work committed into the worker's transaction by a Tx is
// rolled back with it; the worker's transaction decides.
func outerRollback(ctx context.Context, db *sql.DB) (string, error) {
	err := bgworker.Transaction(func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := insertAccount(ctx, tx, &account{Name: "niaj", Created: created}); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		return errors.New("the worker decides to roll back")
	})
	var n int
	err2 := bgworker.Transaction(func() error {
		n = countNamed(ctx, db, "niaj")
		return nil
	})
	return fmt.Sprintf("transaction=%s niaj=%d then=%s", errText(err), n, errText(err2)), nil
}

// throughput times the same loops through database/sql and through spi
// directly, in one worker transaction; the test logs it.
func throughput(ctx context.Context, db *sql.DB) (string, error) {
	const n = 20000
	return inTx(func() (string, error) {
		if _, err := db.ExecContext(ctx, "CREATE TEMP TABLE tp(i int8, s text)"); err != nil {
			return "", err
		}
		perSec := func(fn func(i int) error) (string, error) {
			start := time.Now()
			for i := 0; i < n; i++ {
				if err := fn(i); err != nil {
					return "", err
				}
			}
			return fmt.Sprintf("%.0f/s", n/time.Since(start).Seconds()), nil
		}
		var x int64
		sel, err := spi.Prepare("SELECT $1::int8")
		if err != nil {
			return "", err
		}
		defer sel.Close()
		ins, err := spi.Prepare("INSERT INTO tp(i, s) VALUES ($1, $2)")
		if err != nil {
			return "", err
		}
		defer ins.Close()
		dbSel, err := db.PrepareContext(ctx, "SELECT $1::int8")
		if err != nil {
			return "", err
		}
		defer dbSel.Close()
		var out []string
		for _, l := range []struct {
			name string
			fn   func(i int) error
		}{
			{"spi.Stmt SELECT", func(i int) error { return sel.QueryRow(i).Scan(&x) }},
			{"sql.Stmt SELECT", func(i int) error { return dbSel.QueryRowContext(ctx, i).Scan(&x) }},
			{"db.QueryRow SELECT (cached)", func(i int) error { return db.QueryRowContext(ctx, "SELECT $1::int8", i).Scan(&x) }},
			{"spi.Stmt INSERT", func(i int) error { _, err := ins.Exec(i, "x"); return err }},
			{"db.Exec INSERT (cached)", func(i int) error {
				_, err := db.ExecContext(ctx, "INSERT INTO tp(i, s) VALUES ($1, $2)", i, "x")
				return err
			}},
			{"spi.Exec INSERT (unprepared)", func(i int) error { _, err := spi.Exec("INSERT INTO tp(i, s) VALUES ($1, $2)", i, "x"); return err }},
		} {
			r, err := perSec(l.fn)
			if err != nil {
				return "", fmt.Errorf("%s: %w", l.name, err)
			}
			out = append(out, l.name+" "+r)
		}
		return strings.Join(out, ", "), nil
	})
}

// leakedTx leaves a Tx open when its worker transaction ends, and logs what
// the transaction and the next one return (logged, not recorded: recording
// needs a transaction, which may be what fails).
func leakedTx(ctx context.Context, db *sql.DB) {
	first := bgworker.Transaction(func() error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO accounts(name) VALUES ($1)", "leaked")
		return err // tx is never ended
	})
	second := bgworker.Transaction(func() error {
		return db.PingContext(ctx)
	})
	bgworker.Logf("testsql leaked tx: first=%s second=%s", errText(first), errText(second))
}

func main() {}
