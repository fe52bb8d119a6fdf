package integration

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// The Go-native runtime: bgworker.Context, Do, Serve, the slog handler and
// pggo_wake (internal/testext/runtime.go).

func launchPID(t *testing.T, conn *pgx.Conn, fn string) int {
	t.Helper()
	var pid int
	if err := conn.QueryRow(context.Background(), "SELECT testext_launch($1, true, 0)", fn).Scan(&pid); err != nil {
		t.Fatalf("launch %s: %v", fn, err)
	}
	return pid
}

// exitedWith fails unless the log says pid exited with a code other than 0
// never (code 0 is logged only at DEBUG1).
func noFailedExit(t *testing.T, c *pgtest.Cluster, pid int) {
	t.Helper()
	if regexp.MustCompile(`\(PID ` + strconv.Itoa(pid) + `\) (exited with exit code [1-9]|was terminated)`).MatchString(c.Log()) {
		t.Fatalf("worker %d did not exit with code 0:\n%s", pid, c.LogTail(10))
	}
}

// SIGTERM cancels the worker's context within a second, whether or not the
// worker attached SIGTERM, while its MainFunc blocks on a channel.
func TestRuntimeContext(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	for _, fn := range []string{"ctx_attached", "ctx_die"} {
		t.Run(fn, func(t *testing.T) {
			pid := launchPID(t, conn, fn)
			relResult(t, conn, "pggo dynamic "+fn+" r0", "ready", 30*time.Second)
			start := time.Now()
			if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend($1)", pid); err != nil {
				t.Fatal(err)
			}
			took := waitGone(t, pid, start, 5*time.Second)
			t.Logf("%s: goroutines stopped and the worker exited %v after SIGTERM", fn, took)
			if took > time.Second {
				t.Errorf("the worker took %v to exit after SIGTERM", took)
			}
			if fn == "ctx_attached" {
				if got := relResult(t, conn, "pggo dynamic "+fn+" r0", "cause", time.Second); !strings.Contains(got, "SIGTERM") {
					t.Errorf("context.Cause = %q", got)
				}
				noFailedExit(t, c, pid)
			}
		})
	}
	c.AssertNoCrashRecovery(t)
}

// After the postmaster is killed, the worker's context ends and the worker
// exits.
func TestRuntimeContextPostmasterDeath(t *testing.T) {
	c, conn := startReliability(t)
	pid := launchPID(t, conn, "ctx_attached")
	relResult(t, conn, "pggo dynamic ctx_attached r0", "ready", 30*time.Second)
	start := time.Now()
	if err := syscall.Kill(c.PostmasterPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitGone(t, pid, start, 5*time.Second)
	t.Logf("postmaster SIGKILL: the worker exited after %v", took)
	if took > time.Second {
		t.Errorf("the worker took %v to exit after the postmaster died", took)
	}
}

// 16 goroutines × 1000 transactions through Do: each committed once.
func TestRuntimeDoLedger(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE rel_do(g int, i int, PRIMARY KEY (g, i))"); err != nil {
		t.Fatal(err)
	}
	relLaunch(t, conn, "do_ledger")
	got := relResult(t, conn, "pggo dynamic do_ledger r0", "do", 120*time.Second)
	t.Logf("Do round trips: %s", got)
	if !strings.HasPrefix(got, "failed=0 ") {
		t.Fatalf("Do: %s", got)
	}
	var n, distinct int
	if err := conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT (g, i)) FROM rel_do").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != 16000 || distinct != 16000 {
		t.Fatalf("committed %d rows (%d distinct), want 16000", n, distinct)
	}
	c.AssertNoCrashRecovery(t)
}

// Do and Wake issued while the worker's statement waits on its latch
// (pg_sleep, a row lock) are served right after the statement.
func TestRuntimeDoDuringStatements(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE rel_lock(id int); INSERT INTO rel_lock VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	locker := c.Connect(t)
	lock := func() pgx.Tx {
		tx, err := locker.Begin(ctx)
		if err == nil {
			_, err = tx.Exec(ctx, "SELECT * FROM rel_lock FOR UPDATE")
		}
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	waitLocked := func() {
		pgtest.Eventually(t, 30*time.Second, "the worker to wait for the row lock", func() (bool, error) {
			var n int
			err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pggo_dyn' AND wait_event_type = 'Lock'").Scan(&n)
			return n == 1, err
		})
	}
	tx := lock()
	name := relLaunch(t, conn, "do_during")
	if got := relResult(t, conn, name, "do sleep", 30*time.Second); !regexp.MustCompile(`^err=nil served_after_statement_ms=\d$`).MatchString(got) {
		t.Errorf("Do during pg_sleep: %s", got)
	}
	waitLocked()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := relResult(t, conn, name, "do lock", 30*time.Second); !regexp.MustCompile(`^err=nil served_after_statement_ms=\d$`).MatchString(got) {
		t.Errorf("Do during a row-lock wait: %s", got)
	}
	tx = lock()
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	waitLocked()
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := relResult(t, conn, name, "wake lock", 30*time.Second); !regexp.MustCompile(`^err=nil waited_ms=\d$`).MatchString(got) {
		t.Errorf("Wake during a row-lock wait: %s", got)
	}
	c.AssertNoCrashRecovery(t)
}

// Do with a cancelled context never runs; Do after SIGTERM is ErrShutdown.
func TestRuntimeDoShutdown(t *testing.T) {
	c, conn := startReliability(t)
	pid := launchPID(t, conn, "do_shutdown")
	name := "pggo dynamic do_shutdown r0"
	if got := relResult(t, conn, name, "cancelled", 30*time.Second); got != "err=context canceled ran=false" {
		t.Errorf("Do with a cancelled context: %s", got)
	}
	if _, err := conn.Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if got := relResult(t, conn, name, "after sigterm", 30*time.Second); !strings.HasPrefix(got, "shutdown=true ran=false cause=bgworker: the worker was asked to terminate") {
		t.Errorf("Do after SIGTERM: %s", got)
	}
	c.AssertNoCrashRecovery(t)
}

// 8 goroutines × 1000 slog records: every line once, at its level; with
// log_min_messages = warning, Info is hidden.
func TestRuntimeSlog(t *testing.T) {
	lib := testext(t)
	c := pgtest.Start(t, pgtest.Options{Preload: []string{lib.Loader}, Settings: map[string]string{"log_min_messages": "info"}})
	conn := c.Connect(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE rel_results(name text, key text, value text, at timestamptz DEFAULT clock_timestamp())"); err != nil {
		t.Fatal(err)
	}
	installSQL(t, conn, lib.SQLFile)
	relLaunch(t, conn, "slog")
	name := "pggo dynamic slog r0"
	relResult(t, conn, name, "phase1", 60*time.Second)
	log := c.Log()
	for g := 0; g < 8; g++ {
		for i := 0; i < 1000; i++ {
			line := fmt.Sprintf("LOG:  slog line g=%d i=%d\n", g, i)
			if n := strings.Count(log, line); n != 1 {
				t.Fatalf("%q appears %d times", line, n)
			}
		}
	}
	for _, want := range []string{`WARNING:  slog warn k=v grp.a="b c"`, `LOG:  ERROR: slog error n=1`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(log, "slog debug hidden") {
		t.Error("Debug was logged with log_min_messages = info")
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET log_min_messages = warning"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	relResult(t, conn, name, "phase2", 30*time.Second)
	log = c.Log()
	if !strings.Contains(log, "WARNING:  slog warn after warning") || strings.Contains(log, "slog info after warning") {
		t.Errorf("with log_min_messages = warning: want the Warn record and not the Info one:\n%s", c.LogTail(10))
	}
	c.AssertNoCrashRecovery(t)
}

func installSQL(t *testing.T, conn *pgx.Conn, file string) {
	t.Helper()
	script, err := readFile(file)
	if err == nil {
		_, err = conn.Exec(context.Background(), script)
	}
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// pggo_wake wakes a worker in a one-minute wait at once; a role without
// EXECUTE is refused; other background workers ignore it.
func TestRuntimeWakeFromSQL(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	name := relLaunch(t, conn, "wake_sql")
	var pid int
	pgtest.Eventually(t, 30*time.Second, "the worker to wait", func() (bool, error) {
		err := conn.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE query = 'waiting for pggo_wake'").Scan(&pid)
		if err == pgx.ErrNoRows {
			return false, nil
		}
		return err == nil, err
	})
	if _, err := conn.Exec(ctx, "DELETE FROM rel_results WHERE name = $1", name); err != nil {
		t.Fatal(err)
	}
	called := time.Now()
	var woke bool
	if err := conn.QueryRow(ctx, "SELECT pggo_wake($1)", pid).Scan(&woke); err != nil || !woke {
		t.Fatalf("pggo_wake(%d) = %v, %v", pid, woke, err)
	}
	got := relResult(t, conn, name, "woken", 30*time.Second)
	m := regexp.MustCompile(`^at_ms=(\d+)$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("woken: %s", got)
	}
	at, _ := strconv.ParseInt(m[1], 10, 64)
	after := time.UnixMilli(at).Sub(called)
	if after < -5*time.Millisecond || after > time.Second {
		t.Errorf("the worker woke %v after pggo_wake", after)
	}
	t.Logf("pggo_wake: the worker woke %v after the call", after)

	// Not a background worker: false. Another background worker (the
	// logical replication launcher) ignores SIGUSR2 and lives on.
	var self bool
	if err := conn.QueryRow(ctx, "SELECT pggo_wake(pg_backend_pid())").Scan(&self); err != nil || self {
		t.Errorf("pggo_wake(a client backend) = %v, %v; want false", self, err)
	}
	var launcher int
	if err := conn.QueryRow(ctx, "SELECT pid FROM pg_stat_activity WHERE backend_type = 'logical replication launcher'").Scan(&launcher); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT pggo_wake_type('logical replication launcher')").Scan(&n); err != nil || n != 1 {
		t.Fatalf("pggo_wake_type(launcher) = %d, %v", n, err)
	}
	if !pgtest.ProcessAlive(launcher) {
		t.Fatal("the logical replication launcher died of SIGUSR2")
	}

	// Privilege: revoked from PUBLIC.
	if _, err := conn.Exec(ctx, "CREATE ROLE wake_nopriv"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE wake_nopriv"); err != nil {
		t.Fatal(err)
	}
	_, err = tx.Exec(ctx, "SELECT pggo_wake(1)")
	wantState(t, "pggo_wake without EXECUTE", err, "42501")
	tx.Rollback(ctx)
	c.AssertNoCrashRecovery(t)
}

func readFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	return string(b), err
}

// ConnectWorkerToSPI's flags: BypassAllowConn reaches a database that
// refuses connections; BypassRoleLoginCheck is PostgreSQL 17's (0A000 on 15).
func TestConnectFlags(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	for _, q := range []string{"CREATE DATABASE rel_noconn ALLOW_CONNECTIONS false", "CREATE ROLE rel_nologin NOLOGIN"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	relLaunch(t, conn, "connect_flags")
	c.WaitLog(t, regexp.MustCompile(`testext connect_flags: BypassAllowConn: nil`), 30*time.Second)
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatal(err)
	}
	relLaunch(t, conn, "connect_nologin")
	want := `BypassRoleLoginCheck: nil`
	if version < 170000 {
		want = `BypassRoleLoginCheck: 0A000`
	}
	c.WaitLog(t, regexp.MustCompile(`testext connect_flags: `+want), 30*time.Second)
	c.AssertNoCrashRecovery(t)
}

// A worker's waits show its wait event: its own name on PostgreSQL 17+,
// "Extension" before.
func TestWaitEvent(t *testing.T) {
	c, conn := startReliability(t)
	ctx := context.Background()
	pid := launchPID(t, conn, "wait_event")
	var version int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		t.Fatal(err)
	}
	want := "Extension"
	if version >= 170000 {
		want = "testext_naptime"
	}
	pgtest.Eventually(t, 30*time.Second, "the worker to wait as "+want, func() (bool, error) {
		var typ, ev *string
		err := conn.QueryRow(ctx, "SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = $1", pid).Scan(&typ, &ev)
		if err == pgx.ErrNoRows {
			return false, nil
		}
		return err == nil && typ != nil && *typ == "Extension" && ev != nil && *ev == want, err
	})
	c.AssertNoCrashRecovery(t)
}
