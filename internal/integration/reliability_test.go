package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pggo/pggo/pgtest"
)

// The reliability scenarios of internal/testext/reliability.go: each was a
// way to crash the server, lose a commit or hang a worker, and each test
// failed before the loader's fix.

// startReliability starts a cluster with testext's SQL functions and the
// tables the scenarios write to.
func startReliability(t *testing.T) (*pgtest.Cluster, *pgx.Conn) {
	t.Helper()
	c, conn := startDynamic(t, nil)
	_, err := conn.Exec(context.Background(), `
		CREATE TABLE rel_results(name text, key text, value text, at timestamptz DEFAULT clock_timestamp());
		CREATE TABLE rel_ledger(tag text);
		CREATE TABLE rel_nested(x text DEFAULT testext_nested_spi());
		CREATE TABLE rel_tz(path text, ts timestamp, d date, tz timestamptz);`)
	if err != nil {
		t.Fatal(err)
	}
	return c, conn
}

// relLaunch starts testext_dyn_<fn> (no restart) and returns its name.
func relLaunch(t *testing.T, conn *pgx.Conn, fn string) string {
	t.Helper()
	if _, err := conn.Exec(context.Background(), "SELECT testext_launch($1, false, 0)", fn); err != nil {
		t.Fatalf("launch %s: %v", fn, err)
	}
	return "pggo dynamic " + fn + " r0"
}

// relResult waits for the value the scenario name records under key.
func relResult(t *testing.T, conn *pgx.Conn, name, key string, timeout time.Duration) string {
	t.Helper()
	var v string
	pgtest.Eventually(t, timeout, fmt.Sprintf("%s to record %q", name, key), func() (bool, error) {
		err := conn.QueryRow(context.Background(),
			"SELECT value FROM rel_results WHERE name = $1 AND key = $2 ORDER BY at LIMIT 1", name, key).Scan(&v)
		if err == pgx.ErrNoRows {
			return false, nil
		}
		return err == nil, err
	})
	return v
}

func ledger(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, _ := conn.Query(context.Background(), "SELECT tag FROM rel_ledger")
	tags, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(tags)
	return tags
}

func wantState(t *testing.T, what string, err error, state string) {
	t.Helper()
	if got := sqlState(err); got != state {
		t.Fatalf("%s: %v (SQLSTATE %q), want SQLSTATE %s", what, err, got, state)
	}
}

// A worker's statement calls a Go SQL function that uses spi (directly and
// through a column default): before, the nested call freed the outer call's
// memory (double free, crash recovery); now each frame has its own SPI
// state and both work.
func TestReliabilityNestedSPI(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	name := relLaunch(t, conn, "nested")
	for key, want := range map[string]string{"direct": "nil", "default": "nil", "alive": "yes"} {
		if got := relResult(t, conn, name, key, 30*time.Second); got != want {
			t.Errorf("%s: %s, want %s", key, got, want)
		}
	}
	var got string
	if err := conn.QueryRow(ctx, "SELECT x FROM rel_nested").Scan(&got); err != nil || got != "spi ran" {
		t.Errorf("the column default: %q, %v", got, err)
	}
	c.AssertNoCrashRecovery(t)
}

// spi in Go SQL functions: the caller's transaction (a rolled-back caller
// rolls the function's writes back), errors raised even when Go ignores
// them, STABLE functions read-only.
func TestSQLFunctionSPI(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	var n int64
	if err := conn.QueryRow(ctx, "SELECT testext_spi_insert('f1')").Scan(&n); err != nil || n != 1 {
		t.Fatalf("testext_spi_insert: %d, %v", n, err)
	}
	if err := conn.QueryRow(ctx, "SELECT testext_spi_count('f1')").Scan(&n); err != nil || n != 1 {
		t.Fatalf("testext_spi_count: %d, %v", n, err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "SELECT testext_spi_insert('f2') FROM generate_series(1, 3)"); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SELECT testext_spi_count('f2')").Scan(&n); err != nil || n != 3 {
		t.Fatalf("in the caller's transaction: %d, %v", n, err)
	}
	tx.Rollback(ctx)
	if err := conn.QueryRow(ctx, "SELECT testext_spi_count('f2')").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after the caller rolled back: %d rows, %v", n, err)
	}
	_, err = conn.Exec(ctx, "SELECT testext_spi_swallow()")
	wantState(t, "a failed statement the Go function ignored", err, "22012")
	_, err = conn.Exec(ctx, "SELECT testext_spi_write_stable('f3')")
	wantState(t, "an INSERT in a STABLE function", err, "0A000")
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM rel_ledger WHERE tag = 'f3'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the STABLE function wrote %d rows (%v)", n, err)
	}
	c.AssertNoCrashRecovery(t)
}

// NUL bytes inside values that travel as text: before, C strings stopped
// at the NUL while the lengths did not (SIGSEGV); now SQLSTATE 22021.
func TestReliabilityNUL(t *testing.T) {
	c, conn := startReliability(t)
	name := relLaunch(t, conn, "nul")
	for _, key := range []string{"text[]", "pgtype.Text", "inferred"} {
		if got := relResult(t, conn, name, key, 30*time.Second); got != "22021" {
			t.Errorf("%s: %s, want 22021", key, got)
		}
	}
	relResult(t, conn, name, "alive", 30*time.Second)
	_, err := conn.Exec(context.Background(), "SELECT testext_nul_array()")
	wantState(t, "a Go SQL function returning a NUL byte", err, "22021")
	c.AssertNoCrashRecovery(t)
}

// A query cancel inside a savepoint that a failed statement had already
// rolled back, nested in another savepoint: before, PostgreSQL was left in
// a sub-aborted block while pggo believed it had rolled back, and every
// later transaction committed nothing; now the cancel stays inside the
// savepoint the Go code is in, the enclosing savepoint and the transaction
// commit, and so does the next one.
func TestReliabilitySavepointCancel(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	name := relLaunch(t, conn, "savepoint_cancel")
	var pid int
	pgtest.Eventually(t, 30*time.Second, "the worker to wait in its aborted savepoint", func() (bool, error) {
		err := conn.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query = 'aborted savepoint: waiting for cancel'").Scan(&pid)
		if err == pgx.ErrNoRows {
			return false, nil
		}
		return err == nil, err
	})
	if _, err := conn.Exec(ctx, "SELECT pg_cancel_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	c.WaitLog(t, regexp.MustCompile(`canceling statement due to user request`), 30*time.Second)
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	if got := relResult(t, conn, name, "next", 30*time.Second); got != "nil" {
		t.Fatalf("the next transaction: %s", got)
	}
	t.Logf("savepoints: %s", relResult(t, conn, name, "savepoints", time.Second))
	// The cancel stays in the savepoint the Go code was in (already rolled
	// back): the enclosing savepoint and the transaction commit their rows.
	if got := strings.Join(ledger(t, conn), ","); got != "A,B,B0,C" {
		t.Fatalf("committed rows %q, want A,B,B0,C", got)
	}
	// The worker holds no transaction id while it idles (vacuum is not held back).
	pgtest.Eventually(t, 10*time.Second, "the worker to hold no xid", func() (bool, error) {
		var held bool
		err := conn.QueryRow(ctx, "SELECT backend_xid IS NOT NULL OR backend_xmin IS NOT NULL FROM pg_stat_activity WHERE pid = $1", pid).Scan(&held)
		return err == nil && !held, err
	})
	c.AssertNoCrashRecovery(t)
}

// os.Exit, log.Fatal and runtime.Goexit in a worker: before, each skipped
// PostgreSQL's exit clean-up and the postmaster restarted the cluster; now
// the worker exits 0 or 1, and the row its transaction inserted is rolled
// back.
func TestReliabilityExits(t *testing.T) {
	c, conn := startReliability(t)
	cases := []struct{ fn, code, log string }{
		{"exit0", "0", `Go code called os.Exit\(0\) on the worker's goroutine`},
		{"exit3", "1", `Go code called os.Exit with a non-zero code \(or log.Fatal\) on the worker's goroutine`},
		{"logfatal", "1", `Go code called os.Exit with a non-zero code \(or log.Fatal\) on the worker's goroutine`},
		{"goexit", "1", `background worker function "testext_dyn_goexit" called runtime.Goexit`},
		{"goroutine_exit", "0", `Go code called os.Exit\(0\) on another goroutine`},
	}
	for _, tc := range cases {
		t.Run(tc.fn, func(t *testing.T) {
			// The message names the process ([pid] in the line prefix); its
			// exit is the postmaster's line for that pid.
			re := regexp.MustCompile(`\[(\d+)\] pggo_dyn (?:LOG|ERROR):  ` + tc.log)
			before := c.CountLog(re)
			relLaunch(t, conn, tc.fn)
			var pid string
			pgtest.Eventually(t, 30*time.Second, "the worker's exit message", func() (bool, error) {
				m := re.FindAllStringSubmatch(c.Log(), -1)
				if len(m) > before {
					pid = m[len(m)-1][1]
				}
				return pid != "", nil
			})
			if tc.code != "0" {
				c.WaitLog(t, regexp.MustCompile(`\(PID `+pid+`\) exited with exit code `+tc.code+`\b`), 30*time.Second)
				return
			}
			// The postmaster logs a worker's exit code 0 only at DEBUG1.
			n, _ := strconv.Atoi(pid)
			pgtest.Eventually(t, 30*time.Second, "the worker to exit", func() (bool, error) { return !pgtest.ProcessAlive(n), nil })
			if re := regexp.MustCompile(`\(PID ` + pid + `\) (exited with exit code [1-9]|was terminated)`); re.MatchString(c.Log()) {
				t.Fatalf("the worker did not exit with code 0:\n%s", c.LogTail(10))
			}
		})
	}
	if tags := ledger(t, conn); len(tags) != 0 {
		t.Fatalf("rows of exited transactions were committed: %q", tags)
	}
	c.AssertNoCrashRecovery(t)
}

// SIGTERM or bgworker.Wake while a statement waits on the latch: before,
// the statement consumed the wake-up and the next WaitLatch slept its whole
// timeout (a minute here); now WaitLatch returns at once.
func TestReliabilityLostWakeups(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	t.Run("SIGTERM during pg_sleep", func(t *testing.T) {
		var pid int
		if err := conn.QueryRow(ctx, "SELECT testext_launch('sigterm_sleep', true, 0)").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		pgtest.Eventually(t, 30*time.Second, "the worker to sleep in pg_sleep", func() (bool, error) {
			var ev *string
			err := conn.QueryRow(ctx, "SELECT wait_event FROM pg_stat_activity WHERE pid = $1", pid).Scan(&ev)
			if err == pgx.ErrNoRows {
				return false, nil
			}
			return err == nil && ev != nil && *ev == "PgSleep", err
		})
		start := time.Now()
		if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
			t.Fatal(err)
		}
		took := waitGone(t, pid, start, 10*time.Second)
		t.Logf("SIGTERM during pg_sleep: worker gone after %v", took)
	})
	t.Run("Wake during pg_sleep", func(t *testing.T) {
		name := relLaunch(t, conn, "wake_sleep")
		got := relResult(t, conn, name, "wake", 90*time.Second)
		m := regexp.MustCompile(`^woke=true waited_ms=(\d+)$`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("wake: %s", got)
		}
		if ms, _ := strconv.Atoi(m[1]); ms > 10000 {
			t.Fatalf("WaitLatch slept %d ms after a Wake consumed by pg_sleep", ms)
		}
		t.Logf("Wake during pg_sleep: %s", got)
	})
	t.Run("timeout above INT_MAX ms", func(t *testing.T) {
		name := relLaunch(t, conn, "longwait")
		if got := relResult(t, conn, name, "longwait", 30*time.Second); got != "woken=true early_returns=false" {
			t.Fatalf("WaitLatch(2^32+50 ms) returned before the Wake: %s", got)
		}
	})
	c.AssertNoCrashRecovery(t)
}

// One time.Time into timestamp, date and timestamptz through Exec, Prepare
// and database/sql, with the server's TimeZone in New York: before, each
// path stored a different wall clock; now timestamp and date get the time's
// own wall clock, timestamptz its instant, on every path. And 1e300 into a
// prepared real is 22003, not Infinity.
func TestReliabilityTimestamps(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	name := relLaunch(t, conn, "timezone")
	if got := relResult(t, conn, name, "insert", 30*time.Second); got != "nil" {
		t.Fatalf("insert: %s", got)
	}
	if got := relResult(t, conn, name, "real", 30*time.Second); got != "22003" {
		t.Errorf("1e300 into a prepared real: %s, want 22003", got)
	}
	rows, _ := conn.Query(ctx, `SELECT path || ' ' || ts::text || ' ' || d::text || ' ' || (tz = '2024-05-31 22:30:00+00')::text FROM rel_tz ORDER BY path`)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"exec 2024-06-01 00:30:00 2024-06-01 true",
		"prepare 2024-06-01 00:30:00 2024-06-01 true",
		"sql 2024-06-01 00:30:00 2024-06-01 true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c.AssertNoCrashRecovery(t)
}

// Resource faults: large rows, Rows used in a later transaction, error
// strings of failing Go SQL functions.
func TestReliabilityResources(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	t.Run("2000 rows of 600 kB", func(t *testing.T) {
		name := relLaunch(t, conn, "bigrows")
		if got := relResult(t, conn, name, "bigrows", 120*time.Second); got != "rows=2000 bytes=1200000000 err=nil" {
			t.Fatalf("bigrows: %s", got)
		}
	})
	t.Run("Rows from an earlier transaction", func(t *testing.T) {
		name := relLaunch(t, conn, "stale_rows")
		got := relResult(t, conn, name, "stale", 30*time.Second)
		if !strings.HasPrefix(got, "rows=34000") || !strings.HasSuffix(got, "tx=nil") {
			t.Fatalf("stale rows: %s, want a 34000 error and a committed transaction", got)
		}
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM rel_ledger WHERE tag = 'after stale rows'").Scan(&n); err != nil || n != 1 {
			t.Fatalf("the transaction using stale rows committed %d rows (%v), want 1", n, err)
		}
	})
	t.Run("failing Go SQL functions free their errors", func(t *testing.T) {
		var pid int
		if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		fail := func(n int) {
			_, err := conn.Exec(ctx, `DO $$ BEGIN FOR i IN 1..`+strconv.Itoa(n)+` LOOP
				BEGIN PERFORM testext_fail('error'); EXCEPTION WHEN others THEN NULL; END;
			END LOOP; END $$`)
			if err != nil {
				t.Fatal(err)
			}
		}
		fail(20000) // warm up: Go's heap and PostgreSQL's caches settle
		before := rssKB(t, pid)
		fail(100000)
		after := rssKB(t, pid)
		t.Logf("backend RSS %d kB -> %d kB over 100000 failing calls", before, after)
		// Leaking the error strings cost about 65 bytes a call (6.5 MB here).
		if after-before > 2048 {
			t.Fatalf("backend RSS grew by %d kB over 100000 failing calls", after-before)
		}
	})
	c.AssertNoCrashRecovery(t)
}

func rssKB(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(data)
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// A Go SQL function that ignores what WaitLatch reports cannot swallow a
// query cancel: PostgreSQL raises it when the function returns (before, the
// function ran its whole loop and returned normally).
func TestReliabilitySQLFunctionCancel(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "SET statement_timeout = '300ms'"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var s string
	err := conn.QueryRow(ctx, "SELECT testext_swallow_cancel()").Scan(&s)
	wantState(t, "a statement timeout inside a Go SQL function", err, "57014")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the cancel took %v to reach the client", took)
	}
	if _, err := conn.Exec(ctx, "RESET statement_timeout"); err != nil {
		t.Fatalf("the session after the cancel: %v", err)
	}
	c.AssertNoCrashRecovery(t)
}

// LoadDynamic in OnInit names the mistake (before: "no free background
// worker slot").
func TestReliabilityLoadDynamicInOnInit(t *testing.T) {
	lib := testext(t)
	c, err := pgtest.StartE(t, pgtest.Options{
		Preload: []string{lib.Loader},
		Env:     []string{"PGGO_TEST_INVALID=dynamic_in_init"},
	})
	if err == nil {
		t.Fatal("the server started")
	}
	if !strings.Contains(c.Log(), "LoadDynamic cannot be used in OnInit") {
		t.Fatalf("log does not name the problem:\n%s", c.LogTail(10))
	}
}

// A Go fatal error cannot be recovered: the process dies and PostgreSQL
// restarts the cluster. The log must show Go's reason, and the cluster and
// its workers must come back.
func TestReliabilityGoFatalError(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	relLaunch(t, conn, "fatal")
	c.WaitLog(t, regexp.MustCompile(`fatal error: stack overflow`), 30*time.Second)
	c.WaitLog(t, regexp.MustCompile(`terminating any other active server processes|all server processes terminated; reinitializing`), 30*time.Second)
	pgtest.Eventually(t, 60*time.Second, "the cluster to accept connections again", func() (bool, error) {
		conn2, err := pgx.Connect(ctx, c.ConnString())
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) || strings.Contains(err.Error(), "connect") {
				return false, nil
			}
			return false, nil
		}
		defer conn2.Close(ctx)
		var one int
		return conn2.QueryRow(ctx, "SELECT 1").Scan(&one) == nil && one == 1, nil
	})
}

// A Go SQL function's error reaches the client once: its own message (a
// *pggo.Error's Message, SQLSTATE and hint kept), not wrapped in
// "SQL function ... failed: ERROR: ...", and the function named in CONTEXT.
func TestSQLFunctionErrorsOnce(t *testing.T) {
	_, conn := startReliability(t)
	for how, want := range map[string][2]string{
		"pgerror": {"22023", "testext says invalid parameter"},
		"error":   {"XX000", "testext fmgr error"},
	} {
		_, err := conn.Exec(context.Background(), "SELECT testext_fail($1)", how)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != want[0] || pe.Message != want[1] || !strings.Contains(pe.Where, `Go SQL function "testext_fail"`) {
			t.Errorf("testext_fail(%q): %#v, want SQLSTATE %s, message %q and the function in CONTEXT", how, pe, want[0], want[1])
		}
	}
}
