package fault

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// stopWorkers are the 8 busy workers of the shutdown scenarios.
var stopWorkers = map[string]int{"spi": 2, "sleep": 3, "lock": 3}

// stopSettings leave room for 8 static workers next to PostgreSQL's own
// (the logical replication launcher takes a slot too).
var stopSettings = map[string]string{"max_worker_processes": "16"}

// busyAndWaiting waits until every busy worker makes progress and every
// latch-using one is inside its latch wait, and returns their pids: the
// moment a shutdown is most likely to meet a consumed SIGTERM.
func busyAndWaiting(t testing.TB, conn *pgx.Conn, counts map[string]int) []int {
	t.Helper()
	names := busyNames(counts)
	base, _ := readProgress(conn) // nil before the workers created the table
	prog := waitProgress(t, conn, names, base, 2, 30*time.Second, "busy workers making progress")
	pgtest.Eventually(t, 20*time.Second, "every sleep and lock worker in a latch wait", func() (bool, error) {
		return latchWaiting(conn, "faultext_sleep", "faultext_lock")
	})
	var pids []int
	for _, k := range names {
		pids = append(pids, prog[k].PID)
	}
	sort.Ints(pids)
	return pids
}

// TestStop stops a server with 8 busy workers with pg_ctl stop -m fast,
// restarts it, and stops it with -m smart: every worker must be gone within
// 5 s each time.
func TestStop(t *testing.T) {
	tb := track(t, "pg_ctl stop -m fast and -m smart with 8 busy workers")
	tb.about("8 busy workers (2 SPI loops, 3 in `pg_sleep`, 3 on a row lock; naptime 6 s), stopped while " +
		"every latch-using worker is inside its latch wait: with `-m fast`, then, after a restart, with " +
		"`-m smart` (the test's connection closed first). Every worker must be gone in under 5 s.")
	c := start(tb, stopSettings, busySpec(stopWorkers), "PGGO_FAULT_NAPTIME=6000")
	limit := 5 * time.Second
	for i, mode := range []string{"fast", "smart"} {
		if i > 0 {
			c.Restart(tb)
		}
		conn, err := pgx.Connect(context.Background(), c.ConnString())
		if err != nil {
			tb.Fatal(err)
		}
		pids := busyAndWaiting(tb, conn, stopWorkers)
		logAt := len(c.Log())
		// Smart shutdown waits for client sessions: close ours first.
		conn.Close(context.Background())
		start := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- c.Stop(mode) }()
		maxGone, stuck := waitGone(pids, start, 60*time.Second)
		if err := <-stopped; err != nil {
			tb.Fatal(err)
		}
		total := time.Since(start)
		tb.fig("pg_ctl stop -m "+mode+": slowest worker gone", "%v (pg_ctl returned after %v)", maxGone.Round(time.Millisecond), total.Round(time.Millisecond))
		tb.fig("pg_ctl stop -m "+mode+": the workers' nap after SIGTERM", "%s", naps(c.Log()[logAt:]))
		if len(stuck) > 0 {
			tb.Fatalf("-m %s: workers %v still alive 60 s after pg_ctl stop", mode, stuck)
		}
		if maxGone > limit {
			tb.Errorf("pg_ctl stop -m %s: the slowest of 8 busy workers took %v to exit, limit %v "+
				"(a SIGTERM consumed by a latch-using statement, then a 6 s nap)", mode, maxGone.Round(time.Millisecond), limit)
		}
	}
	c.AssertNoCrashRecovery(tb)
}

// TestPostmasterKill kills the postmaster with SIGKILL under 8 busy workers:
// every worker must notice and exit within a second.
func TestPostmasterKill(t *testing.T) {
	tb := track(t, "Postmaster SIGKILL with 8 busy workers")
	tb.about("SIGKILL of the postmaster while 8 busy workers run (and the latch-using ones wait on their " +
		"latch): every worker process must be gone in under 1 s.")
	c := start(tb, stopSettings, busySpec(stopWorkers), "PGGO_FAULT_NAPTIME=6000")
	conn := c.Connect(tb)
	pids := busyAndWaiting(tb, conn, stopWorkers)
	conn.Close(context.Background())
	start := time.Now()
	if err := syscall.Kill(c.PostmasterPID(), syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	maxGone, stuck := waitGone(pids, start, 30*time.Second)
	tb.fig("slowest worker gone after the postmaster's SIGKILL", "%v", maxGone.Round(time.Millisecond))
	if len(stuck) > 0 {
		tb.Fatalf("workers %v still alive 30 s after the postmaster died", stuck)
	}
	if maxGone > time.Second {
		tb.Errorf("the slowest worker took %v to exit after the postmaster died, limit 1 s", maxGone.Round(time.Millisecond))
	}
}

// TestWorkerKill kills one worker with SIGKILL. PostgreSQL must treat it as
// a crash (every process restarted), then accept connections again and
// start every worker again.
func TestWorkerKill(t *testing.T) {
	tb := track(t, "SIGKILL of one worker: crash recovery, then back")
	tb.about("SIGKILL of one busy worker (restart time 1 s) among 6. Crash recovery is expected: the " +
		"postmaster restarts every process. The cluster must accept connections again and every worker " +
		"must be back (new pids in `pg_stat_activity`) and making progress.")
	counts := map[string]int{"spi": 2, "sleep": 2, "lock": 2}
	c := start(tb, nil, busySpec(counts), "PGGO_FAULT_RESTART=1", "PGGO_FAULT_NAPTIME=10")
	conn := c.Connect(tb)
	names := busyNames(counts)
	before := waitProgress(tb, conn, names, nil, 3, 30*time.Second, "busy workers making progress")
	old := allPIDs(tb, conn)
	victim := before["sleep/0"].PID
	conn.Close(context.Background())

	start := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		tb.Fatal(err)
	}
	c.WaitLog(tb, regexp.MustCompile(`all server processes terminated; reinitializing`), 30*time.Second)
	var conn2 *pgx.Conn
	pgtest.Eventually(tb, 60*time.Second, "the server accepting connections after crash recovery", func() (bool, error) {
		var err error
		conn2, err = pgx.Connect(context.Background(), c.ConnString())
		if err != nil {
			return false, err
		}
		if err := conn2.Ping(context.Background()); err != nil {
			conn2.Close(context.Background())
			return false, err
		}
		return true, nil
	})
	defer conn2.Close(context.Background())
	accepting := time.Since(start)
	var back []int
	pgtest.Eventually(tb, 60*time.Second, "every worker back with a new pid", func() (bool, error) {
		back = allPIDs(tb, conn2)
		fresh := 0
		for _, p := range back {
			if !slices.Contains(old, p) {
				fresh++
			}
		}
		return until(fresh == len(old), "%d of %d workers back", fresh, len(old))
	})
	allBack := time.Since(start)
	after := waitProgress(tb, conn2, names, progressOf(tb, conn2), 3, 60*time.Second, "progress after crash recovery")
	working := time.Since(start)
	tb.fig("crash recoveries (1 expected)", "%d", recoveries(c))
	tb.fig("SIGKILL to accepting connections", "%v", accepting.Round(time.Millisecond))
	tb.fig("SIGKILL to every worker back", "%v (%d workers)", allBack.Round(time.Millisecond), len(back))
	tb.fig("SIGKILL to every worker making progress", "%v", working.Round(time.Millisecond))
	if n := recoveries(c); n != 1 {
		tb.Errorf("%d crash recoveries, want exactly 1", n)
	}
	if !regexp.MustCompile(fmt.Sprintf(`\(PID %d\) was terminated by signal 9`, victim)).MatchString(c.Log()) {
		tb.Errorf("the log does not show worker %d killed by signal 9", victim)
	}
	for _, k := range names {
		if after[k].Bad > 0 {
			tb.Errorf("%s saw %d unexpected errors after recovery, the last: %s", k, after[k].Bad, after[k].LastError)
		}
	}
}

var napRE = regexp.MustCompile(`faultext (\w+) \d+: leaving after SIGTERM \(the nap's WaitLatch returned after (\d+) ms\)`)

// naps summarizes, by worker kind, how long the busy workers' last WaitLatch
// took after SIGTERM, from their log lines in log: about 0 when SIGTERM
// ends it at once, the naptime when the SIGTERM was lost.
func naps(log string) string {
	byKind := map[string][]string{}
	for _, m := range napRE.FindAllStringSubmatch(log, -1) {
		byKind[m[1]] = append(byKind[m[1]], m[2])
	}
	var out []string
	for _, k := range []string{"spi", "sleep", "lock"} {
		if v := byKind[k]; len(v) > 0 {
			out = append(out, fmt.Sprintf("%s %s ms", k, strings.Join(v, "/")))
		}
	}
	if len(out) == 0 {
		return "none logged"
	}
	return strings.Join(out, "; ")
}
