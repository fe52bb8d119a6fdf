package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
	"github.com/pggo/pggo/spi"
	"github.com/pggo/pggo/spi/sqldriver"
)

// Reliability scenarios (internal/integration/reliability_test.go). Each is
// a dynamic worker testext_dyn_<name> launched with testext_launch, or a SQL
// function; workers record what they saw in rel_results(name, key, value),
// which the test creates first.
func init() {
	bgworker.RegisterFunction("testext_dyn_nested", relNested)
	bgworker.RegisterFunction("testext_dyn_nul", relNul)
	bgworker.RegisterFunction("testext_dyn_savepoint_cancel", relSavepointCancel)
	bgworker.RegisterFunction("testext_dyn_exit0", func(pggo.Datum) error { return exitIn(func() { os.Exit(0) }) })
	bgworker.RegisterFunction("testext_dyn_exit3", func(pggo.Datum) error { return exitIn(func() { os.Exit(3) }) })
	bgworker.RegisterFunction("testext_dyn_logfatal", func(pggo.Datum) error { return exitIn(func() { log.Fatal("testext log.Fatal") }) })
	bgworker.RegisterFunction("testext_dyn_goexit", func(pggo.Datum) error { return exitIn(runtime.Goexit) })
	bgworker.RegisterFunction("testext_dyn_goroutine_exit", relGoroutineExit)
	bgworker.RegisterFunction("testext_dyn_sigterm_sleep", relSigtermSleep)
	bgworker.RegisterFunction("testext_dyn_wake_sleep", relWakeSleep)
	bgworker.RegisterFunction("testext_dyn_timezone", relTimezone)
	bgworker.RegisterFunction("testext_dyn_bigrows", relBigRows)
	bgworker.RegisterFunction("testext_dyn_stale_rows", relStaleRows)
	bgworker.RegisterFunction("testext_dyn_longwait", relLongWait)
	bgworker.RegisterFunction("testext_dyn_fatal", relFatal)
	fmgr.Register("testext_nested_spi", "() RETURNS text", nestedSPI)
	fmgr.Register("testext_nul_array", "() RETURNS text[]", nulArray)
	fmgr.Register("testext_swallow_cancel", "() RETURNS text", swallowCancel)
}

// relRecord stores one observation of the running scenario.
func relRecord(key string, value any) {
	err := bgworker.Transaction(func() error {
		_, err := spi.Exec("INSERT INTO rel_results(name, key, value) VALUES ($1, $2, $3)",
			bgworker.Name(), key, fmt.Sprint(value))
		return err
	})
	if err != nil {
		bgworker.Warning("testext: could not record " + key + ": " + err.Error())
	}
}

func relConnect() error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)
	return bgworker.ConnectWorkerToSPI("postgres", "")
}

func state(err error) string {
	var pe *pggo.Error
	if errors.As(err, &pe) {
		return pe.SQLState
	}
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// relNested: a statement of the worker calls a Go SQL function that uses
// spi, directly and through a column default.
func relNested(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	err := bgworker.Transaction(func() error {
		var s string
		return spi.QueryRow("SELECT testext_nested_spi()").Scan(&s)
	})
	relRecord("direct", state(err))
	err = bgworker.Transaction(func() error {
		_, err := spi.Exec("INSERT INTO rel_nested DEFAULT VALUES")
		return err
	})
	relRecord("default", state(err))
	relRecord("alive", "yes")
	return nil
}

func nestedSPI(*fmgr.Args) (any, error) {
	if _, err := spi.Exec("SELECT 1"); err != nil {
		return nil, err
	}
	return "spi ran", nil
}

// relNul: NUL bytes inside values that travel as text (arrays, pgtype).
func relNul(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	cases := []struct {
		key string
		sql string
		arg any
	}{
		{"text[]", "SELECT $1::text[]", []string{"a\x00b", "c"}},
		{"pgtype.Text", "SELECT $1::text", pgtype.Text{String: "\x00tail", Valid: true}},
		{"inferred", "SELECT $1", []string{"\x00"}},
	}
	for _, c := range cases {
		err := bgworker.Transaction(func() error {
			_, err := spi.Exec(c.sql, c.arg)
			return err
		})
		relRecord(c.key, state(err))
	}
	relRecord("alive", "yes")
	return nil
}

func nulArray(*fmgr.Args) (any, error) {
	return []string{"x\x00y"}, nil
}

// relSavepointCancel: a query cancel arrives while the worker is inside a
// savepoint that a failed statement already rolled back, nested in another.
func relSavepointCancel(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	var inner, outer, afterCancel error
	txErr := bgworker.Transaction(func() error {
		if _, err := spi.Exec("INSERT INTO rel_ledger VALUES ('A')"); err != nil {
			return err
		}
		outer = spi.Savepoint(func() error {
			if _, err := spi.Exec("INSERT INTO rel_ledger VALUES ('B0')"); err != nil {
				return err
			}
			inner = spi.Savepoint(func() error {
				if _, err := spi.Exec("SELECT 1/0"); err == nil {
					return errors.New("1/0 succeeded")
				}
				// The savepoint is rolled back; wait here for the test's cancel
				// (it reloads the configuration after the cancel was seen).
				bgworker.ReportActivity("aborted savepoint: waiting for cancel")
				for deadline := time.Now().Add(30 * time.Second); !bgworker.SighupReceived() && time.Now().Before(deadline); {
					bgworker.WaitLatch(100 * time.Millisecond)
				}
				return errors.New("inner savepoint failed")
			})
			_, afterCancel = spi.Exec("INSERT INTO rel_ledger VALUES ('B')")
			return nil
		})
		return nil
	})
	bgworker.ReportActivity("")
	relRecord("savepoints", fmt.Sprintf("inner=%s after=%s outer=%s tx=%s", state(inner), state(afterCancel), state(outer), state(txErr)))
	err := bgworker.Transaction(func() error {
		_, err := spi.Exec("INSERT INTO rel_ledger VALUES ('C')")
		return err
	})
	relRecord("next", state(err))
	for bgworker.WaitLatch(time.Minute) {
	}
	return nil
}

// exitIn runs exit (os.Exit, log.Fatal, runtime.Goexit) inside a
// transaction that inserted a row: it must end the worker cleanly, and the
// row must be rolled back.
func exitIn(exit func()) error {
	if err := relConnect(); err != nil {
		return err
	}
	return bgworker.Transaction(func() error {
		if _, err := spi.Exec("INSERT INTO rel_ledger VALUES ($1)", "exit "+bgworker.Name()); err != nil {
			return err
		}
		exit()
		return errors.New("exit returned")
	})
}

// relGoroutineExit: os.Exit(0) on another goroutine while the worker waits.
func relGoroutineExit(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	bgworker.Go(func() { os.Exit(0) })
	for bgworker.WaitLatch(time.Minute) {
	}
	return errors.New("WaitLatch returned false without an exit")
}

// relSigtermSleep: SIGTERM while a statement sleeps on the latch.
func relSigtermSleep(pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGTERM)
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	for {
		err := bgworker.Transaction(func() error {
			_, err := spi.Exec("SELECT pg_sleep(0.5)")
			return err
		})
		if err != nil {
			return err
		}
		if !bgworker.WaitLatch(time.Minute) {
			return nil
		}
	}
}

// relWakeSleep: bgworker.Wake while a statement sleeps on the latch.
func relWakeSleep(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	start := make(chan struct{})
	var woke atomic.Bool
	bgworker.Go(func() {
		<-start
		time.Sleep(100 * time.Millisecond) // inside pg_sleep(0.5) below
		woke.Store(true)
		bgworker.Wake()
	})
	err := bgworker.Transaction(func() error {
		close(start)
		_, err := spi.Exec("SELECT pg_sleep(0.5)")
		return err
	})
	if err != nil {
		return err
	}
	t0 := time.Now()
	bgworker.WaitLatch(time.Minute)
	relRecord("wake", fmt.Sprintf("woke=%v waited_ms=%d", woke.Load(), time.Since(t0).Milliseconds()))
	return nil
}

// relTimezone: one time.Time into timestamp, date and timestamptz columns
// through Exec, Prepare and database/sql, under a non-UTC TimeZone.
func relTimezone(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	at := time.Date(2024, 6, 1, 0, 30, 0, 0, time.FixedZone("UTC+2", 2*3600))
	const ins = "INSERT INTO rel_tz(path, ts, d, tz) VALUES ($1, $2, $3, $4)"
	err := bgworker.Transaction(func() error {
		if _, err := spi.Exec("SET TIME ZONE 'America/New_York'"); err != nil {
			return err
		}
		if _, err := spi.Exec(ins, "exec", at, at, at); err != nil {
			return fmt.Errorf("exec: %w", err)
		}
		st, err := spi.Prepare(ins)
		if err != nil {
			return err
		}
		defer st.Close()
		if _, err := st.Exec("prepare", at, at, at); err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		db := sqldriver.OpenDB()
		defer db.Close()
		if _, err := db.ExecContext(context.Background(), ins, "sql", at, at, at); err != nil {
			return fmt.Errorf("database/sql: %w", err)
		}
		return nil
	})
	relRecord("insert", state(err))
	err = bgworker.Transaction(func() error {
		st, err := spi.Prepare("SELECT $1::real")
		if err != nil {
			return err
		}
		defer st.Close()
		var f float32
		return st.QueryRow(1e300).Scan(&f)
	})
	relRecord("real", state(err))
	return nil
}

// relBigRows: 2000 rows of 600 kB read through a cursor.
func relBigRows(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	n, size := 0, 0
	err := bgworker.Transaction(func() error {
		rows, err := spi.Query("SELECT repeat('x', 600000) FROM generate_series(1, 2000)")
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				return err
			}
			n++
			size += len(s)
		}
		return rows.Err()
	})
	relRecord("bigrows", fmt.Sprintf("rows=%d bytes=%d err=%s", n, size, state(err)))
	return nil
}

// relStaleRows: Rows kept from one transaction and used in the next.
func relStaleRows(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	var rows *spi.Rows
	bgworker.Transaction(func() error {
		var err error
		rows, err = spi.Query("SELECT g FROM generate_series(1, 10000) g")
		if err == nil {
			rows.Next()
		}
		return err
	})
	var stale error
	err := bgworker.Transaction(func() error {
		for rows.Next() {
		}
		stale = rows.Err()
		_, err := spi.Exec("INSERT INTO rel_ledger VALUES ('after stale rows')")
		return err
	})
	relRecord("stale", fmt.Sprintf("rows=%s tx=%s", state(stale), state(err)))
	return nil
}

// relLongWait: a WaitLatch timeout above INT_MAX milliseconds.
func relLongWait(pggo.Datum) error {
	if err := relConnect(); err != nil {
		return err
	}
	var woke atomic.Bool
	bgworker.Go(func() {
		time.Sleep(1500 * time.Millisecond)
		woke.Store(true)
		bgworker.Wake()
	})
	// A latch may be set for other reasons: count the returns. A timeout
	// that wrapped to 50 ms would return about 30 times before the Wake.
	returns := 0
	for start := time.Now(); !woke.Load() && time.Since(start) < 10*time.Second; returns++ {
		bgworker.WaitLatch(time.Duration(1<<32+50) * time.Millisecond)
	}
	relRecord("longwait", fmt.Sprintf("woken=%v early_returns=%v", woke.Load(), returns > 5))
	return nil
}

// relFatal: a Go fatal error nobody can recover (stack overflow).
func relFatal(pggo.Datum) error {
	debug.SetMaxStack(1 << 20)
	var f func(int) int
	f = func(n int) int { return f(n+1) + 1 }
	return fmt.Errorf("%d", f(0))
}

// swallowCancel is a Go SQL function that ignores what WaitLatch reports,
// so a query cancel is only ever seen by the C side.
func swallowCancel(*fmgr.Args) (any, error) {
	for i := 0; i < 100; i++ {
		bgworker.WaitLatch(100 * time.Millisecond)
	}
	return "finished", nil
}

// SQL functions using spi (in the caller's transaction and snapshot).
func init() {
	fmgr.Register("testext_spi_count", "(tag text) RETURNS int8 STABLE", spiCount)
	fmgr.Register("testext_spi_insert", "(tag text) RETURNS int8", spiInsert)
	fmgr.Register("testext_spi_write_stable", "(tag text) RETURNS int8 STABLE", spiInsert)
	fmgr.Register("testext_spi_swallow", "() RETURNS text", spiSwallow)
}

func spiCount(args *fmgr.Args) (any, error) {
	var tag string
	if err := args.Scan(&tag); err != nil {
		return nil, err
	}
	var n int64
	err := spi.QueryRow("SELECT count(*) FROM rel_ledger WHERE tag = $1", tag).Scan(&n)
	return n, err
}

func spiInsert(args *fmgr.Args) (any, error) {
	var tag string
	if err := args.Scan(&tag); err != nil {
		return nil, err
	}
	return spi.Exec("INSERT INTO rel_ledger VALUES ($1)", tag)
}

// spiSwallow ignores a failed statement: PostgreSQL raises it all the same.
func spiSwallow(*fmgr.Args) (any, error) {
	spi.Exec("SELECT 1/0")
	return "swallowed", nil
}
