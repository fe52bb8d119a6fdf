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
	rounds := pick(1, 3)
	worst := map[string]time.Duration{}
	all := map[string][]string{}
	for i := 0; i < 2*rounds; i++ {
		mode := []string{"fast", "smart"}[i%2]
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
		worst[mode] = max(worst[mode], maxGone)
		all[mode] = append(all[mode], maxGone.Round(time.Millisecond).String())
		tb.fig(fmt.Sprintf("pg_ctl stop -m %s, round %d", mode, i/2+1), "slowest worker gone after %v, pg_ctl returned after %v; the workers' nap after SIGTERM: %s",
			maxGone.Round(time.Millisecond), total.Round(time.Millisecond), naps(c.Log()[logAt:]))
		if len(stuck) > 0 {
			tb.Fatalf("-m %s: workers %v still alive 60 s after pg_ctl stop", mode, stuck)
		}
		if maxGone > limit {
			tb.Errorf("pg_ctl stop -m %s: the slowest of 8 busy workers took %v to exit, limit %v "+
				"(a SIGTERM consumed by a latch-using statement, then a 6 s nap)", mode, maxGone.Round(time.Millisecond), limit)
		}
	}
	for _, mode := range []string{"fast", "smart"} {
		tb.key("pg_ctl stop -m "+mode+": slowest worker gone (max)", "%v (rounds: %s)", worst[mode].Round(time.Millisecond), strings.Join(all[mode], ", "))
	}
	tb.noCrash(c)
}

// TestPostmasterKill kills the postmaster with SIGKILL under 8 busy workers:
// every worker must notice and exit within a second.
func TestPostmasterKill(t *testing.T) {
	tb := track(t, "Postmaster SIGKILL with 8 busy workers")
	tb.about("SIGKILL of the postmaster while 8 busy workers run (and the latch-using ones wait on their " +
		"latch): every worker process must be gone in under 1 s.")
	c := start(tb, stopSettings, busySpec(stopWorkers), "PGGO_FAULT_NAPTIME=6000")
	rounds := pick(1, 5)
	var worst time.Duration
	var all []string
	for r := 0; r < rounds; r++ {
		if r > 0 {
			c.Restart(tb) // waits out the killed postmaster's children
		}
		conn, err := pgx.Connect(context.Background(), c.ConnString())
		if err != nil {
			tb.Fatal(err)
		}
		pids := busyAndWaiting(tb, conn, stopWorkers)
		conn.Close(context.Background())
		start := time.Now()
		if err := syscall.Kill(c.PostmasterPID(), syscall.SIGKILL); err != nil {
			tb.Fatal(err)
		}
		maxGone, stuck := waitGone(pids, start, 30*time.Second)
		worst = max(worst, maxGone)
		all = append(all, maxGone.Round(time.Millisecond).String())
		if len(stuck) > 0 {
			tb.Fatalf("workers %v still alive 30 s after the postmaster died", stuck)
		}
		if maxGone > time.Second {
			tb.Errorf("the slowest worker took %v to exit after the postmaster died, limit 1 s", maxGone.Round(time.Millisecond))
		}
	}
	tb.key("slowest worker gone after the postmaster's SIGKILL (max)", "%v (rounds: %s)", worst.Round(time.Millisecond), strings.Join(all, ", "))
	tb.crashes(recoveries(c))
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
	names := busyNames(counts)
	sort.Strings(names)
	rounds := pick(1, 5)
	tb.expectCrashes(rounds)
	conn, err := pgx.Connect(context.Background(), c.ConnString())
	if err != nil {
		tb.Fatal(err)
	}
	var after map[string]progress
	var worstBack time.Duration
	var all []string
	for r := 0; r < rounds; r++ {
		before := waitProgress(tb, conn, names, progressOf(tb, conn), 3, 30*time.Second, "busy workers making progress")
		old := allPIDs(tb, conn)
		victimName := names[(r*5)%len(names)] // another worker each round
		victim := before[victimName].PID
		conn.Close(context.Background())

		start := time.Now()
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			tb.Fatal(err)
		}
		pgtest.Eventually(tb, 30*time.Second, "the postmaster reinitializing", func() (bool, error) {
			return until(recoveries(c) == r+1, "%d recoveries", recoveries(c))
		})
		pgtest.Eventually(tb, 60*time.Second, "the server accepting connections after crash recovery", func() (bool, error) {
			var err error
			if conn, err = pgx.Connect(context.Background(), c.ConnString()); err != nil {
				return false, err
			}
			if err := conn.Ping(context.Background()); err != nil {
				conn.Close(context.Background())
				return false, err
			}
			return true, nil
		})
		accepting := time.Since(start)
		var back []int
		pgtest.Eventually(tb, 60*time.Second, "every worker back with a new pid", func() (bool, error) {
			back = allPIDs(tb, conn)
			fresh := 0
			for _, p := range back {
				if !slices.Contains(old, p) {
					fresh++
				}
			}
			return until(fresh == len(old), "%d of %d workers back", fresh, len(old))
		})
		allBack := time.Since(start)
		after = waitProgress(tb, conn, names, progressOf(tb, conn), 3, 60*time.Second, "progress after crash recovery")
		working := time.Since(start)
		worstBack = max(worstBack, allBack)
		all = append(all, allBack.Round(time.Millisecond).String())
		tb.fig(fmt.Sprintf("round %d: SIGKILL of %s", r+1, victimName), "accepting connections after %v, every worker back after %v (%d), making progress after %v",
			accepting.Round(time.Millisecond), allBack.Round(time.Millisecond), len(back), working.Round(time.Millisecond))
		if !regexp.MustCompile(fmt.Sprintf(`\(PID %d\) was terminated by signal 9`, victim)).MatchString(c.Log()) {
			tb.Errorf("the log does not show worker %d killed by signal 9", victim)
		}
	}
	defer conn.Close(context.Background())
	tb.crashes(recoveries(c))
	tb.key("SIGKILL of a worker to every worker back (max)", "%v (rounds: %s)", worstBack.Round(time.Millisecond), strings.Join(all, ", "))
	if n := recoveries(c); n != rounds {
		tb.Errorf("%d crash recoveries, want exactly %d", n, rounds)
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
