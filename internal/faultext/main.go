// Command faultext is the pggo extension of the fault suite
// (internal/fault). Its workers inject faults, or stand in for busy
// production workers while the suite signals, stops and kills the server.
// What it registers is chosen by the server's environment, read in OnInit:
//
//	PGGO_FAULT_WORKERS     kinds and counts, "ledger:2,sleep:3": see below
//	PGGO_FAULT_SEED        ledger plan seed (default 1)
//	PGGO_FAULT_ITERATIONS  ledger transactions per worker (default 500)
//	PGGO_FAULT_EXCLUDE     ledger endings to leave out, "abortedfault,panic" (faultplan.Ending.Slug)
//	PGGO_FAULT_RESTART     restart time in seconds of every worker (default never)
//	PGGO_FAULT_BATCH       units of work per batch of a busy worker (default: until SIGTERM)
//	PGGO_FAULT_NAPTIME     a busy worker's nap between batches, ms (default 10000)
//	PGGO_FAULT_BADINPUT    a bad builder case to Load in OnInit (the server must refuse to start)
//	PGGO_FAULT_HUGE        bytes of the params worker's huge string (default 16 MB)
//	PGGO_FAULT_SOAK        1 adds the params cases of the soak run (a string above 1 GB, ...)
//
// Kinds: "ledger" (internal/faultplan's transactions against fault_ledger),
// "spi", "sleep", "lock" (busy loops: plain SPI in nested savepoints,
// pg_sleep, row-lock waits), "wake" (bgworker.Wake during a latch-using
// statement), "badinput" (every bad builder through LoadDynamic) and
// "params" (bad SPI parameters). The custom setting faultext.pause = on
// holds busy workers until it is turned off and the configuration reloaded.
//
// Workers create their tables themselves (they start before a test can
// connect) and report in them or in the server log; the ledger workers report
// in the log only, because a lost commit would lose a report in a table too.
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

func init() {
	bgworker.RegisterFunction("faultext_ledger", ledgerMain)
	bgworker.RegisterFunction("faultext_spi", spiMain)
	bgworker.RegisterFunction("faultext_sleep", sleepMain)
	bgworker.RegisterFunction("faultext_lock", lockMain)
	bgworker.RegisterFunction("faultext_wake", wakeMain)
	bgworker.RegisterFunction("faultext_badinput", badInputMain)
	bgworker.RegisterFunction("faultext_params", paramsMain)
	bgworker.RegisterFunction("faultext_noop", noopMain)
	pggo.OnInit(register)
}

// kinds are the worker kinds PGGO_FAULT_WORKERS may name.
var kinds = map[string]bool{
	"ledger": true, "spi": true, "sleep": true, "lock": true, "wake": true, "badinput": true, "params": true,
}

func register() error {
	restart := bgworker.NeverRestart
	if s := os.Getenv("PGGO_FAULT_RESTART"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("PGGO_FAULT_RESTART=%q: %v", s, err)
		}
		restart = time.Duration(n) * time.Second
	}
	for _, spec := range strings.Split(os.Getenv("PGGO_FAULT_WORKERS"), ",") {
		if spec == "" {
			continue
		}
		kind, count, _ := strings.Cut(spec, ":")
		n := 1
		if count != "" {
			var err error
			if n, err = strconv.Atoi(count); err != nil {
				return fmt.Errorf("PGGO_FAULT_WORKERS: %q: %v", spec, err)
			}
		}
		if !kinds[kind] {
			return fmt.Errorf("PGGO_FAULT_WORKERS: unknown kind %q", kind)
		}
		for i := 0; i < n; i++ {
			err := bgworker.New(fmt.Sprintf("faultext %s %d", kind, i)).
				SetType("faultext_" + kind).
				SetLibrary("faultext").
				SetFunction("faultext_" + kind).
				EnableSPIAccess().
				SetRestartTime(restart).
				SetArgument(pggo.Int32Datum(int32(i))).
				Load()
			if err != nil {
				return err
			}
		}
	}
	if c := os.Getenv("PGGO_FAULT_BADINPUT"); c != "" {
		b, ok := badBuilder(c)
		if !ok {
			return fmt.Errorf("PGGO_FAULT_BADINPUT: unknown case %q", c)
		}
		// Load's error is ignored on purpose: the server must refuse to
		// start anyway.
		_ = b.Load()
	}
	return nil
}

// envInt reads an integer setting from the server's environment.
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

// setupSQL creates every table the workers use; idempotent, because workers
// of several kinds start at once and each runs it.
var setupSQL = []string{
	`CREATE TABLE IF NOT EXISTS fault_ledger(
		worker int NOT NULL, seq int NOT NULL, part int NOT NULL CHECK (part >= 0),
		level int NOT NULL, note text NOT NULL DEFAULT '', PRIMARY KEY (worker, seq, part))`,
	`CREATE TABLE IF NOT EXISTS fault_unique(k int PRIMARY KEY)`,
	`INSERT INTO fault_unique VALUES (1) ON CONFLICT DO NOTHING`,
	`CREATE TABLE IF NOT EXISTS fault_parent(id int PRIMARY KEY)`,
	`CREATE TABLE IF NOT EXISTS fault_deferred(
		ref int REFERENCES fault_parent DEFERRABLE INITIALLY DEFERRED)`,
	`CREATE TABLE IF NOT EXISTS fault_progress(
		kind text, worker int, pid int, n bigint NOT NULL DEFAULT 0,
		sighups bigint NOT NULL DEFAULT 0, cancels bigint NOT NULL DEFAULT 0,
		unexpected bigint NOT NULL DEFAULT 0, last_error text, PRIMARY KEY (kind, worker))`,
	`CREATE TABLE IF NOT EXISTS fault_lockrow(id int PRIMARY KEY, n bigint NOT NULL)`,
	`INSERT INTO fault_lockrow VALUES (1, 0) ON CONFLICT DO NOTHING`,
	`CREATE TABLE IF NOT EXISTS fault_results(
		worker text, key text, value text, at timestamptz DEFAULT clock_timestamp())`,
	`CREATE TABLE IF NOT EXISTS fault_params(
		i2 int2, i4 int4, i8 int8, r real, t text, ta text[], b bytea,
		ts timestamptz, d date, n numeric(5, 2), j jsonb)`,
}

// connect attaches the signals, connects and creates the tables.
func connect() error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	for {
		// CREATE TABLE IF NOT EXISTS races between sessions without a lock.
		// The lock is tried, not waited for: a lock wait arms PostgreSQL's
		// deadlock timer, whose SIGALRM may come any time later and wake
		// the worker's latch, which would hide lost wake-ups from the suite.
		var got bool
		err := bgworker.Transaction(func() error {
			if err := spi.QueryRow("SELECT pg_try_advisory_xact_lock($1)", 4243).Scan(&got); err != nil || !got {
				return err
			}
			for _, q := range setupSQL {
				if _, err := spi.Exec(q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || got {
			return err
		}
		if !bgworker.WaitLatch(10 * time.Millisecond) {
			return errors.New("faultext: SIGTERM before the tables were created")
		}
	}
}

// record stores one observation in fault_results in its own transaction.
func record(key, value string) error {
	return bgworker.Transaction(func() error {
		_, err := spi.Exec("INSERT INTO fault_results(worker, key, value) VALUES ($1, $2, $3)",
			bgworker.Name(), key, value)
		return err
	})
}

// idle waits until SIGTERM and returns nil (exit code 0).
func idle() error {
	for bgworker.WaitLatch(time.Minute) {
	}
	return nil
}

// noopMain is the worker bad-input probes launch when a slot is free: it
// exits at once.
func noopMain(pggo.Datum) error { return nil }

func main() {}
