package integration

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

func shmState(t *testing.T, conn *pgx.Conn, which string) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), "SELECT testext_shm_state($1)", which).Scan(&s); err != nil {
		t.Fatalf("testext_shm_state(%s): %v", which, err)
	}
	return s
}

func field(t *testing.T, s, name string) int64 {
	t.Helper()
	m := regexp.MustCompile(`\b` + name + `=(-?\d+)`).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s= in %q", name, s)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestSharedMemory: regions declared in Go, shared by workers and backends.
func TestSharedMemory(t *testing.T) {
	c, conn := startDynamic(t, map[string]string{"max_worker_processes": "16"})
	ctx := context.Background()

	t.Run("8 processes race to attach, init runs once", func(t *testing.T) {
		// The race region's init sleeps 500 ms under the region's lock:
		// the other workers wait on it, under the region's name.
		var wg sync.WaitGroup
		var launchErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn2 := c.Connect(t)
			_, launchErr = conn2.Exec(ctx, "SELECT testext_shm_launch('race', 0, 8)")
		}()
		waited := 0
		pgtest.Eventually(t, 20*time.Second, "a worker waiting on LWLock testext.race", func() (bool, error) {
			err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'LWLock' AND wait_event = 'testext.race'").Scan(&waited)
			return waited > 0, err
		})
		wg.Wait()
		if launchErr != nil {
			t.Fatal(launchErr)
		}
		s := shmState(t, conn, "race")
		if field(t, s, "init") != 1 || field(t, s, "attached") != 8 {
			t.Fatalf("race region: %s; want init=1 attached=8", s)
		}
		t.Logf("%s; %d worker(s) seen waiting on wait_event testext.race", s, waited)
	})

	t.Run("4 workers x 100k increments", func(t *testing.T) {
		before := shmState(t, conn, "counters")
		start := time.Now()
		if _, err := conn.Exec(ctx, "SELECT testext_shm_launch('incr', 100000, 4)"); err != nil {
			t.Fatal(err)
		}
		after := shmState(t, conn, "counters")
		if d := field(t, after, "atomic") - field(t, before, "atomic"); d != 400000 {
			t.Errorf("atomic counter grew by %d, want 400000 (%s)", d, after)
		}
		if d := field(t, after, "plain") - field(t, before, "plain"); d != 400000 {
			t.Errorf("locked counter grew by %d, want 400000 (%s)", d, after)
		}
		if field(t, after, "init") != 1 {
			t.Errorf("init ran %d times", field(t, after, "init"))
		}
		t.Logf("%s in %v", after, time.Since(start))
	})

	t.Run("lock misuse is an error", func(t *testing.T) {
		if s := shmState(t, conn, "nested"); !strings.Contains(s, "outer=<nil>") || !strings.Contains(s, "do not nest") {
			t.Errorf("nested Lock: %s", s)
		}
		if s := shmState(t, conn, "goroutine"); s != "true" {
			t.Errorf("Lock from another goroutine gives ErrWrongThread: %s", s)
		}
	})

	t.Run("crash restart re-creates and re-initialises", func(t *testing.T) { shmCrashRestart(t, c, conn) })
}

// shmCrashRestart kills a worker with SIGKILL: after the crash restart the
// counters region is new, initialised once, and usable.
func shmCrashRestart(t *testing.T, c *pgtest.Cluster, conn *pgx.Conn) {
	ctx := context.Background()
	before := shmState(t, conn, "counters")
	shmState(t, conn, "bump")
	var pid int
	if err := conn.QueryRow(ctx, "SELECT testext_launch('sleep', true, 0)").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	ready := regexp.MustCompile(`database system is ready to accept connections`)
	readyBefore := c.CountLog(ready)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 30*time.Second, "the server to restart after the crash", func() (bool, error) {
		return c.CountLog(ready) > readyBefore, nil
	})
	var conn2 *pgx.Conn
	pgtest.Eventually(t, 30*time.Second, "reconnect after crash restart", func() (bool, error) {
		var err error
		conn2, err = pgx.Connect(ctx, c.ConnString())
		if err != nil {
			return false, nil
		}
		return conn2.Ping(ctx) == nil, nil
	})
	defer conn2.Close(ctx)
	after := shmState(t, conn2, "counters")
	if field(t, after, "init") != 1 || field(t, after, "atomic") != 0 || field(t, after, "epoch") == field(t, before, "epoch") {
		t.Fatalf("after crash restart: %s (before: %s); want a fresh region, init=1", after, before)
	}
	if _, err := conn2.Exec(ctx, "SELECT testext_shm_launch('incr', 1000, 2)"); err != nil {
		t.Fatal(err)
	}
	if s := shmState(t, conn2, "counters"); field(t, s, "plain") != 2000 || field(t, s, "init") != 1 {
		t.Fatalf("region after restart: %s", s)
	}
	t.Logf("before %s; after %s", before, after)
}

// TestSharedMemoryBadType: a region type that cannot live in shared memory
// makes the server refuse to start, naming the field; nothing crashes.
func TestSharedMemoryBadType(t *testing.T) {
	cases := map[string]string{
		"string":  `shmem.Declare\("testext.bad"\): main.badString.Inner.Name is a string`,
		"pointer": `shmem.Declare\("testext.bad"\): main.badPointer.Next is a ptr \(\*main.badPointer\)`,
		"name":    `shmem.Declare\("testext bad name"\): byte 7 \(' '\) of the name is not a letter`,
	}
	lib := testext(t)
	for kind, want := range cases {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c, err := pgtest.StartE(t, pgtest.Options{
				Preload: []string{lib.Loader},
				Env:     []string{"PGGO_TEST_BADREGION=" + kind},
			})
			if err == nil {
				t.Fatalf("the server started with a bad region (%s)", kind)
			}
			if !regexp.MustCompile(`FATAL:  pggo: \S+: ` + want).MatchString(c.Log()) {
				t.Fatalf("log does not name the problem (want %q):\n%s", want, c.LogTail(10))
			}
			if strings.Contains(c.Log(), "terminated by signal") || c.Running() {
				t.Fatalf("crash or running postmaster:\n%s", c.LogTail(10))
			}
		})
	}
}

// TestMessageQueues: shm_mq between a backend and dynamic workers.
func TestMessageQueues(t *testing.T) {
	c, conn := startDynamic(t, nil)
	ctx := context.Background()
	var s string

	t.Run("1M messages in order", func(t *testing.T) {
		if err := conn.QueryRow(ctx, "SELECT testext_mq_stream(1000000, 64)").Scan(&s); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(s, "ok n=1000000 after=true") {
			t.Fatalf("stream: %s", s)
		}
		t.Log(s)
		if err := conn.QueryRow(ctx, "SELECT testext_mq_stream(20000, 8192)").Scan(&s); err != nil {
			t.Fatal(err)
		}
		t.Log("8 kB: " + s)
	})

	t.Run("killed sender: detach error within 1 s", func(t *testing.T) {
		if err := conn.QueryRow(ctx, "SELECT testext_mq_kill(64)").Scan(&s); err != nil {
			t.Fatal(err)
		}
		if ms := field(t, s, "after_kill_ms"); ms > 1000 {
			t.Fatalf("detach seen %d ms after the kill: %s", ms, s)
		}
		t.Log(s)
	})

	t.Run("full queue blocks the sender until drained", func(t *testing.T) {
		if err := conn.QueryRow(ctx, "SELECT testext_mq_full()").Scan(&s); err != nil {
			t.Fatal(err)
		}
		if fit := field(t, s, "fit"); fit < 1 || fit >= 16 {
			t.Errorf("a 16 kB queue took %d 1 kB messages without blocking", fit)
		}
		if !strings.Contains(s, "sent_after_drain=true") || field(t, s, "blocked_ms") < 400 {
			t.Errorf("the sender did not wait for the reader: %s", s)
		}
		t.Log(s)
	})
	c.AssertNoCrashRecovery(t)
}

// TestSharedMemoryLockWaitPostmasterDeath: a worker waiting for a region's
// lock, which another worker holds forever, exits promptly when the
// postmaster dies (PostgreSQL's own LWLock wait sleeps on a semaphore and
// would never notice). For a reserved region and, on 17+, a DSM registry
// one (its LWLock lives in the segment).
func TestSharedMemoryLockWaitPostmasterDeath(t *testing.T) {
	t.Run("preloaded", func(t *testing.T) {
		c, conn := startDynamic(t, nil)
		lockWaitPostmasterDeath(t, c, conn)
	})
	t.Run("DSM registry", func(t *testing.T) {
		c, conn := startNotPreloaded(t, nil)
		if serverVersionNum(t, context.Background(), conn) < 170000 {
			t.Skip("the DSM registry is PostgreSQL 17's")
		}
		// This backend attaches first, so that it knows the tranche's name
		// (before PostgreSQL 19 each process registers it for itself).
		shmState(t, conn, "hold")
		lockWaitPostmasterDeath(t, c, conn)
	})
}

func lockWaitPostmasterDeath(t *testing.T, c *pgtest.Cluster, conn *pgx.Conn) {
	ctx := context.Background()
	var holder, waiter int
	if err := conn.QueryRow(ctx, "SELECT testext_shm_start('hold')").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(holder, syscall.SIGKILL)
	pgtest.Eventually(t, 20*time.Second, "the holder to take the lock", func() (bool, error) {
		return field(t, shmState(t, conn, "hold"), "holder") == int64(holder), nil
	})
	if err := conn.QueryRow(ctx, "SELECT testext_shm_start('wait')").Scan(&waiter); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(waiter, syscall.SIGKILL)
	// The waiter shows the region's name as its LWLock wait event.
	pgtest.Eventually(t, 20*time.Second, "the waiter to wait on LWLock testext.hold", func() (bool, error) {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'LWLock' AND wait_event = 'testext.hold'", waiter).Scan(&n)
		return n == 1, err
	})

	// A backend waiting for the same lock: a query cancel ends its wait.
	conn2 := c.Connect(t)
	var backend int
	if err := conn2.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		t.Fatal(err)
	}
	cancelled := make(chan error, 1)
	go func() { cancelled <- conn2.QueryRow(ctx, "SELECT testext_shm_state('lock_hold')").Scan(new(string)) }()
	pgtest.Eventually(t, 20*time.Second, "the backend to wait on LWLock testext.hold", func() (bool, error) {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'LWLock' AND wait_event = 'testext.hold'", backend).Scan(&n)
		return n == 1, err
	})
	if _, err := conn.Exec(ctx, "SELECT pg_cancel_backend($1)", backend); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cancelled:
		if sqlState(err) != "57014" {
			t.Fatalf("a cancelled lock wait: %v, want 57014", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a query cancel did not end the backend's lock wait")
	}

	conn.Close(ctx)
	start := time.Now()
	if err := syscall.Kill(c.PostmasterPID(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitGone(t, waiter, start, 5*time.Second)
	t.Logf("the waiter exited %v after SIGKILL of the postmaster", took)
	// Exited, not crashed on the way out (a condition variable in an
	// unmapped DSM segment would be a SIGSEGV in ProcKill).
	if log := c.Log(); strings.Contains(log, "SIGSEGV") || strings.Contains(log, "signal arrived") {
		t.Fatalf("the waiter crashed on its way out:\n%s", c.LogTail(40))
	}
	if !pgtest.ProcessAlive(holder) {
		t.Fatalf("the holder (which never releases) exited too: the lock was not held forever")
	}
	syscall.Kill(holder, syscall.SIGKILL)
	waitGone(t, holder, time.Now(), 5*time.Second)
}

// startNotPreloaded starts a cluster where testext is not in
// shared_preload_libraries: backends and dynamic workers load it on demand.
func startNotPreloaded(t *testing.T, settings map[string]string) (*pgtest.Cluster, *pgx.Conn) {
	t.Helper()
	lib := testext(t)
	c := pgtest.Start(t, pgtest.Options{Settings: settings})
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

// TestSharedMemoryDSMRegistry: regions of a library that is not preloaded
// live in PostgreSQL 17's DSM registry; before 17 they are a clear error.
func TestSharedMemoryDSMRegistry(t *testing.T) {
	c, conn := startNotPreloaded(t, map[string]string{"max_worker_processes": "16"})
	ctx := context.Background()
	if serverVersionNum(t, ctx, conn) < 170000 {
		var s string
		err := conn.QueryRow(ctx, "SELECT testext_shm_state('counters')").Scan(&s)
		if err == nil || !strings.Contains(err.Error(), `shared memory region "testext.counters" was not reserved at server start: add the extension to shared_preload_libraries`) ||
			!strings.Contains(err.Error(), "PostgreSQL 17's DSM registry") {
			t.Fatalf("a region without preloading before 17: %q, %v; want the error saying preload is needed", s, err)
		}
		t.Log(err)
		c.AssertNoCrashRecovery(t)
		return
	}

	t.Run("8 processes race to create and attach, init runs once", func(t *testing.T) {
		var wg sync.WaitGroup
		var launchErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn2 := c.Connect(t)
			_, launchErr = conn2.Exec(ctx, "SELECT testext_shm_launch('race', 0, 8)")
		}()
		// This backend has not attached the race region, so it does not know
		// its tranche's name: PostgreSQL 17 and 18 show "extension".
		var waited int
		pgtest.Eventually(t, 20*time.Second, "a worker waiting on the race region's LWLock", func() (bool, error) {
			err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pggo_shm_race' AND wait_event_type = 'LWLock'").Scan(&waited)
			return waited > 0, err
		})
		wg.Wait()
		if launchErr != nil {
			t.Fatal(launchErr)
		}
		s := shmState(t, conn, "race")
		if field(t, s, "init") != 1 || field(t, s, "attached") != 8 {
			t.Fatalf("race region: %s; want init=1 attached=8", s)
		}
		t.Logf("%s; %d worker(s) seen waiting", s, waited)
	})

	t.Run("4 workers x 100k increments", func(t *testing.T) {
		start := time.Now()
		if _, err := conn.Exec(ctx, "SELECT testext_shm_launch('incr', 100000, 4)"); err != nil {
			t.Fatal(err)
		}
		after := shmState(t, conn, "counters")
		if field(t, after, "atomic") != 400000 || field(t, after, "plain") != 400000 || field(t, after, "init") != 1 {
			t.Errorf("counters: %s; want atomic=400000 plain=400000 init=1", after)
		}
		t.Logf("%s in %v", after, time.Since(start))
		// A backend increments as the workers do, in the same segment.
		shmState(t, conn, "bump")
		if s := shmState(t, conn, "counters"); field(t, s, "atomic") != 400001 {
			t.Errorf("after a backend's increment: %s", s)
		}
	})

	t.Run("crash restart re-creates and re-initialises", func(t *testing.T) { shmCrashRestart(t, c, conn) })
}
