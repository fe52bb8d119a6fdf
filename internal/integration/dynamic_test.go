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

// startDynamic starts a cluster with testext preloaded, no static test
// workers, and its SQL functions created from the generated script.
func startDynamic(t *testing.T, settings map[string]string) (*pgtest.Cluster, *pgx.Conn) {
	t.Helper()
	lib := testext(t)
	c := pgtest.Start(t, pgtest.Options{Preload: []string{lib.Loader}, Settings: settings})
	conn := c.Connect(t)
	script, err := os.ReadFile(lib.SQLFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), string(script)); err != nil {
		t.Fatalf("%s: %v", lib.SQLFile, err)
	}
	return c, conn
}

// createSetLatch creates the loader's pggo_set_latch as the README says,
// once per cluster.
func createSetLatch(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), fmt.Sprintf(
		"CREATE OR REPLACE FUNCTION pggo_set_latch(pid int4) RETURNS bool AS '%s', 'pggo_set_latch' LANGUAGE C STRICT",
		strings.ReplaceAll(testext(t).Loader, "'", "''"))); err != nil {
		t.Fatal(err)
	}
}

// connectAs connects to c as role, closed when the test ends.
func connectAs(t *testing.T, c *pgtest.Cluster, role string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(c.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.User = role
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// TestSQLFunctions: Go functions called from SQL in an ordinary backend.
func TestSQLFunctions(t *testing.T) {
	c, conn := startDynamic(t, nil)
	ctx := context.Background()
	var n *int32
	if err := conn.QueryRow(ctx, "SELECT testext_add(2, 40)").Scan(&n); err != nil || n == nil || *n != 42 {
		t.Fatalf("testext_add(2, 40) = %v, %v", n, err)
	}
	if err := conn.QueryRow(ctx, "SELECT testext_add(NULL, 1)").Scan(&n); err != nil || n != nil {
		t.Fatalf("testext_add(NULL, 1) = %v, %v; want NULL", n, err)
	}
	_, err := conn.Exec(ctx, "SELECT testext_add(2147483647, 1)")
	if sqlState(err) != "22003" {
		t.Fatalf("int4 overflow of the Go result: %v, want SQLSTATE 22003", err)
	}
	_, err = conn.Exec(ctx, "SELECT testext_fail('panic')")
	if err == nil || !strings.Contains(err.Error(), `SQL function "testext_fail" panicked: testext fmgr panic`) {
		t.Fatalf("panic in a SQL function: %v", err)
	}
	_, err = conn.Exec(ctx, "SELECT testext_fail('pgerror')")
	if sqlState(err) != "22023" {
		t.Fatalf("*pggo.Error from a SQL function: %v, want SQLSTATE 22023", err)
	}
	// The session survives Go errors and panics.
	if err := conn.QueryRow(ctx, "SELECT testext_add(1, 1)").Scan(&n); err != nil || *n != 2 {
		t.Fatalf("after the errors: %v, %v", n, err)
	}
	if n := threads(t, c.PostmasterPID()); n != 1 {
		t.Fatalf("postmaster has %d threads after Go ran in a backend", n)
	}
	c.AssertNoCrashRecovery(t)
}

// TestDynamicWorkers: launch, track, terminate, restart semantics.
func TestDynamicWorkers(t *testing.T) {
	c, conn := startDynamic(t, nil)
	ctx := context.Background()

	t.Run("launch, pg_stat_activity, terminate", func(t *testing.T) {
		var pid int
		if err := conn.QueryRow(ctx, "SELECT testext_launch('sleep', true, 0)").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if !pgtest.ProcessAlive(pid) {
			t.Fatalf("WaitForStartup returned pid %d, which is not alive", pid)
		}
		var typ string
		pgtest.Eventually(t, 10*time.Second, "the worker in pg_stat_activity", func() (bool, error) {
			err := conn.QueryRow(ctx, "SELECT backend_type FROM pg_stat_activity WHERE pid = $1", pid).Scan(&typ)
			return err == nil && typ == "pggo_dyn", nil
		})
		var stopped int
		if err := conn.QueryRow(ctx, "SELECT testext_terminate_all()").Scan(&stopped); err != nil || stopped != 1 {
			t.Fatalf("Terminate + WaitForShutdown: %d, %v", stopped, err)
		}
		if pgtest.ProcessAlive(pid) {
			t.Fatalf("worker %d still alive after WaitForShutdown", pid)
		}
	})

	// WaitForStartup promises a started process with a pid, not a row in
	// pg_stat_activity: that comes when the worker connects to a database.
	t.Run("WaitForStartup: a pid before pg_stat_activity", func(t *testing.T) {
		var pid int
		if err := conn.QueryRow(ctx, "SELECT testext_launch('late', true, 0)").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		if !pgtest.ProcessAlive(pid) {
			t.Fatalf("WaitForStartup returned pid %d, which is not alive", pid)
		}
		visible := func() bool {
			var n int
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		if visible() {
			t.Fatalf("worker %d is in pg_stat_activity before it connected", pid)
		}
		// pggo_set_latch finds only processes in the proc array, which a
		// worker joins when it connects.
		createSetLatch(t, conn)
		var woke bool
		if err := conn.QueryRow(ctx, "SELECT pggo_set_latch($1)", pid).Scan(&woke); err != nil || woke {
			t.Fatalf("pggo_set_latch(%d) before the worker connected: %v, %v; want false", pid, woke, err)
		}
		c.WaitLog(t, regexp.MustCompile(fmt.Sprintf(`testext late worker %d: waiting for SIGHUP`, pid)), 10*time.Second)
		if visible() {
			t.Fatalf("worker %d is in pg_stat_activity before it connected", pid)
		}
		if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil { // SIGHUP: the worker connects
			t.Fatal(err)
		}
		pgtest.Eventually(t, 10*time.Second, "the worker in pg_stat_activity after it connected", func() (bool, error) {
			return visible(), nil
		})
		if err := conn.QueryRow(ctx, "SELECT pggo_set_latch($1)", pid).Scan(&woke); err != nil || !woke {
			t.Fatalf("pggo_set_latch(%d) after the worker connected: %v, %v; want true", pid, woke, err)
		}
		if _, err := conn.Exec(ctx, "SELECT testext_terminate_all()"); err != nil {
			t.Fatal(err)
		}
	})

	// The README's recipe: a superuser creates pggo_set_latch, revokes it
	// from PUBLIC and grants it to the roles that may wake workers.
	t.Run("pggo_set_latch privileges", func(t *testing.T) {
		createSetLatch(t, conn)
		for _, q := range []string{"CREATE ROLE setlatch_app LOGIN", "CREATE ROLE setlatch_other LOGIN"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := conn.Exec(ctx, "CREATE SCHEMA setlatch AUTHORIZATION setlatch_app"); err != nil {
			t.Fatal(err)
		}
		app, other := connectAs(t, c, "setlatch_app"), connectAs(t, c, "setlatch_other")
		lib := testext(t)
		// In a schema of its own: refused for the language, not the schema.
		_, err := app.Exec(ctx, fmt.Sprintf("CREATE FUNCTION setlatch.my_set_latch(int4) RETURNS bool AS '%s', 'pggo_set_latch' LANGUAGE C STRICT",
			strings.ReplaceAll(lib.Loader, "'", "''")))
		if sqlState(err) != "42501" || !strings.Contains(err.Error(), "permission denied for language c") {
			t.Fatalf("a non-superuser creating the C function: %v, want permission denied for language c (42501)", err)
		}
		var woke bool
		if err := other.QueryRow(ctx, "SELECT pggo_set_latch(pg_backend_pid())").Scan(&woke); err != nil || !woke {
			t.Fatalf("PUBLIC may execute a new function by default: %v, %v", woke, err)
		}
		if err := other.QueryRow(ctx, "SELECT pggo_set_latch(1)").Scan(&woke); err != nil || woke {
			t.Fatalf("pggo_set_latch of a pid that is no PostgreSQL process: %v, %v; want false", woke, err)
		}
		for _, q := range []string{
			"REVOKE EXECUTE ON FUNCTION pggo_set_latch(int4) FROM PUBLIC",
			"GRANT EXECUTE ON FUNCTION pggo_set_latch(int4) TO setlatch_app",
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := other.Exec(ctx, "SELECT pggo_set_latch(pg_backend_pid())"); sqlState(err) != "42501" {
			t.Fatalf("after REVOKE FROM PUBLIC: %v, want permission denied (42501)", err)
		}
		if err := app.QueryRow(ctx, "SELECT pggo_set_latch(pg_backend_pid())").Scan(&woke); err != nil || !woke {
			t.Fatalf("the granted role: %v, %v", woke, err)
		}
	})

	t.Run("untracked", func(t *testing.T) {
		var got string
		if err := conn.QueryRow(ctx, "SELECT testext_untracked()").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, "Untracked notify=0: ") {
			t.Fatalf("WaitForStartup without notify pid: %q", got)
		}
	})

	t.Run("restart only with a restart time", func(t *testing.T) {
		for _, q := range []string{
			"SELECT testext_launch('error', false, 0)", // NeverRestart
			"SELECT testext_launch('exit', false, 1)",  // returns nil: unregistered
			"SELECT testext_launch('error', false, 1)", // restarted every second
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		restarting := regexp.MustCompile(`ERROR:  background worker function "testext_dyn_error" failed: testext dynamic worker error \(pggo dynamic error r1\)`)
		pgtest.Eventually(t, 20*time.Second, "three runs of the restarting worker", func() (bool, error) {
			return c.CountLog(restarting) >= 3, nil
		})
		// More than 2 s have passed: the others ran once each.
		if n := c.CountLog(regexp.MustCompile(`testext dynamic worker error \(pggo dynamic error r0\)`)); n != 1 {
			t.Errorf("the NeverRestart worker that failed ran %d times", n)
		}
		if n := c.CountLog(regexp.MustCompile(`"pggo dynamic exit r1": first Go line`)); n != 1 {
			t.Errorf("the worker that returned nil ran %d times, want 1 (exit code 0 unregisters)", n)
		}
		if _, err := conn.Exec(ctx, "SELECT testext_terminate_all()"); err != nil {
			t.Fatal(err)
		}
	})
	c.AssertNoCrashRecovery(t)
}

// TestDynamicSlots: many launches leak nothing, slot exhaustion is a clear
// error, and launching needs EXECUTE.
func TestDynamicSlots(t *testing.T) {
	c, conn := startDynamic(t, map[string]string{"max_worker_processes": "4"})
	ctx := context.Background()

	t.Run("200 launch/exit cycles", func(t *testing.T) {
		var lat []int
		for i := 0; i < 200; i++ {
			var us int
			if err := conn.QueryRow(ctx, "SELECT testext_launch_cycle()").Scan(&us); err != nil {
				t.Fatalf("cycle %d: %v", i, err)
			}
			lat = append(lat, us)
		}
		first50 := append([]int(nil), lat[:50]...)
		sort.Ints(first50)
		var goLine []int
		for _, m := range regexp.MustCompile(`"pggo dynamic exit r0": first Go line (\d+) us`).FindAllStringSubmatch(c.Log(), -1) {
			v, _ := strconv.Atoi(m[1])
			goLine = append(goLine, v)
		}
		sort.Ints(goLine)
		if len(goLine) < 200 {
			t.Fatalf("%d of 200 dynamic workers logged their first Go line", len(goLine))
		}
		t.Logf("LoadDynamic -> WaitForStartup: median of 50 = %d us; LoadDynamic -> first Go line in the worker: median of %d = %d us",
			first50[25], len(goLine), goLine[len(goLine)/2])
	})

	t.Run("slot exhaustion", func(t *testing.T) {
		var static int
		conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'logical replication launcher'").Scan(&static)
		free := 4 - static
		launched := 0
		var lastErr error
		for i := 0; i < free+2; i++ {
			_, err := conn.Exec(ctx, "SELECT testext_launch('sleep', true, 0)")
			if err != nil {
				lastErr = err
				break
			}
			launched++
		}
		if launched != free {
			t.Fatalf("launched %d workers with %d free slots (last error %v)", launched, free, lastErr)
		}
		if sqlState(lastErr) != "53400" || !strings.Contains(lastErr.Error(), "no free background worker slot") {
			t.Fatalf("slot exhaustion error: %v", lastErr)
		}
		var pe *pgconn.PgError
		// The message is PostgreSQL's alone, not wrapped in Go's text.
		if errors.As(lastErr, &pe); pe == nil || !strings.Contains(pe.Hint, "max_worker_processes (4)") ||
			!strings.HasPrefix(pe.Message, "could not register background worker") {
			t.Fatalf("the error should name max_worker_processes in its hint: %+v", pe)
		}
		var stopped int
		if err := conn.QueryRow(ctx, "SELECT testext_terminate_all()").Scan(&stopped); err != nil || stopped != free {
			t.Fatalf("terminate_all: %d, %v", stopped, err)
		}
		// The slots are free again.
		for i := 0; i < free; i++ {
			if _, err := conn.Exec(ctx, "SELECT testext_launch('sleep', true, 0)"); err != nil {
				t.Fatalf("launch %d after the others exited: %v", i, err)
			}
		}
		conn.Exec(ctx, "SELECT testext_terminate_all()")
	})

	t.Run("EXECUTE is revoked from PUBLIC", func(t *testing.T) {
		if _, err := conn.Exec(ctx, "CREATE ROLE alice LOGIN"); err != nil {
			t.Fatal(err)
		}
		cfg, err := pgx.ParseConfig(c.ConnString())
		if err != nil {
			t.Fatal(err)
		}
		cfg.User = "alice"
		alice, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer alice.Close(ctx)
		_, err = alice.Exec(ctx, "SELECT testext_launch_cycle()")
		if sqlState(err) != "42501" {
			t.Fatalf("alice without a grant: %v, want permission denied (42501)", err)
		}
		if _, err := conn.Exec(ctx, "GRANT EXECUTE ON FUNCTION testext_launch_cycle() TO alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.Exec(ctx, "SELECT testext_launch_cycle()"); err != nil {
			t.Fatalf("alice with the grant: %v", err)
		}
	})
	c.AssertNoCrashRecovery(t)
}

// TestDynamicExample runs examples/dynamic: SQL launches workers that split
// a table between them and exit 0.
func TestDynamicExample(t *testing.T) {
	ext := pgtest.Build(t, sourcePath("examples/dynamic"))
	c := pgtest.Start(t, pgtest.Options{Preload: []string{ext.Loader}})
	conn := c.Connect(t)
	ctx := context.Background()
	ext.InstallSQL(t, conn)
	for _, q := range []string{
		"CREATE TABLE dynamic_items(id int PRIMARY KEY, value int, doubled int, worker int)",
		"INSERT INTO dynamic_items SELECT g, g, NULL, NULL FROM generate_series(1, 1000) g",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var done int
	if err := conn.QueryRow(ctx, "SELECT dynamic_process(4)").Scan(&done); err != nil || done != 4 {
		t.Fatalf("dynamic_process(4) = %d, %v", done, err)
	}
	var workers, missing int
	var sum int64
	if err := conn.QueryRow(ctx, "SELECT count(DISTINCT worker), count(*) FILTER (WHERE doubled IS NULL), sum(doubled) FROM dynamic_items").
		Scan(&workers, &missing, &sum); err != nil {
		t.Fatal(err)
	}
	if workers != 4 || missing != 0 || sum != 1000*1001 {
		t.Fatalf("after the workers: %d workers, %d rows unprocessed, sum %d (want 4, 0, %d)", workers, missing, sum, 1000*1001)
	}
	_, err := conn.Exec(ctx, "SELECT dynamic_process(0)")
	if sqlState(err) != "22023" {
		t.Fatalf("dynamic_process(0): %v", err)
	}
	c.AssertNoCrashRecovery(t)
}

// TestWorkerSPIExample runs examples/worker_spi as make demo does.
func TestWorkerSPIExample(t *testing.T) {
	ext := pgtest.Build(t, sourcePath("examples/worker_spi"))
	c := pgtest.Start(t, pgtest.Options{Preload: []string{ext.Loader},
		Settings: map[string]string{"worker_spi.total_workers": "2", "worker_spi.naptime": "1"}})
	conn := c.Connect(t)
	ctx := context.Background()
	pgtest.Eventually(t, 30*time.Second, "both worker_spi tables", func() (bool, error) {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 'counted'").Scan(&n)
		return n == 2, err
	})
	if _, err := conn.Exec(ctx, "INSERT INTO schema2.counted VALUES ('total', 0), ('delta', 5), ('delta', 6)"); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 30*time.Second, "worker 2 folding its deltas", func() (bool, error) {
		var v int
		err := conn.QueryRow(ctx, "SELECT value FROM schema2.counted WHERE type = 'total'").Scan(&v)
		return v == 11, err
	})
	c.WaitLog(t, regexp.MustCompile(`worker_spi worker 2: count in "schema2"."counted" is now 11`), 10*time.Second)
	c.AssertNoCrashRecovery(t)
}
