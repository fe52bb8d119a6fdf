package fault

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pggo/pggo/internal/faultplan"
	"github.com/pggo/pggo/pgtest"
)

const ledgerSeed = 1

// TestLedger runs ledger workers through internal/faultplan's transactions
// (commits, Go errors, panics, SPI errors, swallowed errors, failures in
// already-aborted savepoints, commit-time failures, up to three savepoints
// deep) and then compares fault_ledger with the plan: every row of a
// committed level must be there, no other row may be.
func TestLedger(t *testing.T) {
	tb := track(t, "Ledger: injected faults against committed rows")
	tb.about(ledgerAbout)
	runLedger(tb, nil)
}

// TestLedgerWithoutAbortedErrors is TestLedger without its one kind of fault
// that PostgreSQL itself raises inside an already-aborted savepoint, so that
// a failure of TestLedger can be told apart from a failure of the rest.
func TestLedgerWithoutAbortedErrors(t *testing.T) {
	tb := track(t, "Ledger without ERRORs inside aborted savepoints")
	tb.about("TestLedger's plan with every \"ERROR in aborted savepoint\" ending replaced by a commit " +
		"(the other draws unchanged): if only TestLedger fails, that one kind of fault is the cause.")
	runLedger(tb, []faultplan.Ending{faultplan.AbortedFault})
}

// ledgerAbout describes the ledger scenario in the report.
const ledgerAbout = "Ledger workers run transactions planned by `internal/faultplan` (same seed in the worker " +
	"and in the test): each level (the transaction, then up to 3 nested `spi.Savepoint`s) inserts rows " +
	"and ends by committing, returning a `*pggo.Error`, panicking, a failing statement (9 SQLSTATEs), a " +
	"swallowed failing statement, a statement retried in the aborted savepoint, an ERROR raised inside the " +
	"aborted savepoint (`shmem.AttachQueue` of a queue that does not exist), or (transaction only) a deferred-key failure at " +
	"commit. Afterwards every row of a committed level must be in `fault_ledger` and no other row."

// runLedger runs the ledger scenario with the plan's exclude endings left out.
func runLedger(tb *tracked, exclude []faultplan.Ending) {
	planner := faultplan.Planner{Seed: ledgerSeed, Exclude: exclude}
	var slugs []string
	for _, e := range exclude {
		slugs = append(slugs, e.Slug())
	}
	nWorkers := pick(2, 4)
	iters := pick(800, 50000)
	minFaults := pick(1000, 20000)
	per := make([]int, nWorkers)
	for i := range per {
		per[i] = iters
	}
	want := planner.Expect(per)
	if want.TotalFaults() < minFaults {
		tb.Fatalf("the plan injects %d faults, want at least %d: raise the iterations", want.TotalFaults(), minFaults)
	}

	// Every worker slot is taken by a ledger worker.
	c := start(tb, map[string]string{
		"max_worker_processes":            strconv.Itoa(nWorkers),
		"max_logical_replication_workers": "0",
		"max_parallel_workers":            "0",
	},
		fmt.Sprintf("PGGO_FAULT_WORKERS=ledger:%d", nWorkers),
		fmt.Sprintf("PGGO_FAULT_ITERATIONS=%d", iters),
		fmt.Sprintf("PGGO_FAULT_SEED=%d", ledgerSeed),
		"PGGO_FAULT_EXCLUDE="+strings.Join(slugs, ","))
	conn := c.Connect(tb)
	ctx := context.Background()

	doneRE := regexp.MustCompile(`faultext ledger (\d+): done iterations=(\d+) faults=(\d+) unexpected=(\d+) elapsed_ms=(\d+) kinds=\[([^\]]*)\]`)
	exitRE := regexp.MustCompile(`background worker "faultext_ledger" \(PID \d+\) exited`)
	var done [][]string
	pgtest.Eventually(tb, pick(120*time.Second, 45*time.Minute), "every ledger worker's summary in the log", func() (bool, error) {
		if n := recoveries(c); n > 0 {
			tb.Fatalf("crash recovery while the ledger workers ran:\n%s", crashSummary(c, 10))
		}
		done = doneRE.FindAllStringSubmatch(c.Log(), -1)
		// A worker that ended early will never report: stop waiting.
		return until(len(done) >= nWorkers || exitRE.MatchString(c.Log()), "%d of %d workers done", len(done), nWorkers)
	})
	unexpectedLogged := 0
	// A worker that ended early is checked over the iterations the log
	// shows it completed.
	finished := map[int]bool{}
	for _, d := range done {
		w, _ := strconv.Atoi(d[1])
		finished[w] = true
	}
	ran := make([]int, nWorkers)
	early := 0
	for w := range ran {
		if finished[w] {
			ran[w] = iters
		} else {
			ran[w] = completed(c.Log(), w)
			early++
		}
	}
	if early > 0 {
		want = planner.Expect(ran)
		// The dead workers' counts are in their warnings only.
		unexpectedLogged = len(warningRE.FindAllString(c.Log(), -1))
	}

	observed, unexpected := 0, 0
	var maxMS int
	for _, d := range done {
		n, _ := strconv.Atoi(d[2])
		f, _ := strconv.Atoi(d[3])
		u, _ := strconv.Atoi(d[4])
		ms, _ := strconv.Atoi(d[5])
		observed += f
		unexpected += u
		maxMS = max(maxMS, ms)
		if n != iters {
			tb.Errorf("ledger worker %s ran %d iterations, want %d", d[1], n, iters)
		}
	}

	// The table against the plan.
	rows, err := conn.Query(ctx, "SELECT worker, seq, part FROM fault_ledger")
	if err != nil {
		tb.Fatal(err)
	}
	present := map[faultplan.Key]bool{}
	var phantoms []faultplan.Key
	for rows.Next() {
		var k faultplan.Key
		if err := rows.Scan(&k.Worker, &k.Seq, &k.Part); err != nil {
			tb.Fatal(err)
		}
		if k.Worker >= 0 && k.Worker < nWorkers && k.Seq >= ran[k.Worker] && !finished[k.Worker] {
			continue // beyond what the log shows the worker completed
		}
		present[k] = true
		if _, ok := want.Committed[k]; !ok {
			phantoms = append(phantoms, k)
		}
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	var lost []faultplan.Key
	for k := range want.Committed {
		if !present[k] {
			lost = append(lost, k)
		}
	}

	var byKind []string
	for _, k := range faultplan.Endings() {
		if want.Faults[k] == 0 {
			continue
		}
		tb.fig("faults injected: "+k.String(), "%d", want.Faults[k])
		byKind = append(byKind, fmt.Sprintf("%s %d", k, want.Faults[k]))
	}
	tb.key("faults injected by kind", "%s", strings.Join(byKind, ", "))
	tb.key("faults injected, total", "%d across %d workers (%d reported by the workers)", want.TotalFaults(), nWorkers, observed)
	tb.fig("of which ERRORs inside an aborted savepoint 2+ levels deep", "%d", want.Nested)
	if early == 0 {
		tb.fig("transactions", "%d, %.0f/s per worker", want.Iterations, float64(iters)/(float64(maxMS)/1000))
	} else {
		tb.fig("transactions checked", "%d (ledger workers that ended early: %d of %d, checked up to the iteration their log reached: %v)",
			want.Iterations, early, nWorkers, ran)
	}
	tb.fig("rows expected committed / rolled back", "%d / %d", len(want.Committed), want.RolledBack)
	tb.key("rows lost (committed level, row missing)", "%d", len(lost))
	tb.key("phantom rows (rolled back or unplanned, row present)", "%d", len(phantoms))
	tb.fig("outcomes the workers did not expect", "%d", unexpected+unexpectedLogged)

	if len(lost) > 0 {
		lost = faultplan.SortedKeys(lost)
		first := lost[0]
		tb.Errorf("%d committed rows lost, first %+v (worker %d's iteration %d: %s)\nfirst unexpected outcomes in the log:\n%s",
			len(lost), first, first.Worker, first.Seq, describe(planner.Plan(first.Worker, first.Seq)), warnings(c, 5))
	}
	if len(phantoms) > 0 {
		phantoms = faultplan.SortedKeys(phantoms)
		tb.Errorf("%d rows present that were rolled back, first %+v", len(phantoms), phantoms[0])
	}
	if unexpected > 0 && len(lost) == 0 && early == 0 {
		tb.Errorf("the workers saw %d outcomes the plan did not predict:\n%s", unexpected, warnings(c, 5))
	}
	if early > 0 {
		tb.Errorf("%d of %d ledger workers ended before finishing their iterations:\n%s\nfirst unexpected outcomes:\n%s",
			early, nWorkers, fatals(c, 5), warnings(c, 8))
	} else if observed != want.TotalFaults() {
		tb.Errorf("the workers injected %d faults, the plan %d", observed, want.TotalFaults())
	}
	// Idle after their loop, the workers must hold no transaction: a
	// transaction PostgreSQL still thinks is open would keep its xid and
	// block vacuum.
	var holding int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'faultext_ledger'
		AND (backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)`).Scan(&holding); err != nil {
		tb.Fatal(err)
	}
	if holding > 0 {
		tb.Errorf("%d idle ledger workers still hold a transaction id or snapshot (pg_stat_activity.backend_xid/backend_xmin)", holding)
	}
	tb.noCrash(c)
}

var (
	ledgerProgressRE = regexp.MustCompile(`faultext ledger (\d+): (\d+) iterations done`)
	ledgerWarningRE  = regexp.MustCompile(`faultext ledger (\d+) seq (\d+): unexpected`)
)

// completed returns how many iterations the log shows worker completed:
// its last progress line, or the iteration of its last warning (the ones
// before it have completed).
func completed(log string, worker int) int {
	n := 0
	for _, m := range ledgerProgressRE.FindAllStringSubmatch(log, -1) {
		if w, _ := strconv.Atoi(m[1]); w == worker {
			v, _ := strconv.Atoi(m[2])
			n = max(n, v)
		}
	}
	for _, m := range ledgerWarningRE.FindAllStringSubmatch(log, -1) {
		if w, _ := strconv.Atoi(m[1]); w == worker {
			v, _ := strconv.Atoi(m[2])
			n = max(n, v)
		}
	}
	return n
}

// describe renders an iteration's plan, for failure messages.
func describe(it faultplan.Iteration) string {
	var parts []string
	depth := 0
	for l := &it.Top; l != nil; l = l.Child {
		where := "transaction"
		if depth > 0 {
			where = fmt.Sprintf("savepoint %d", depth)
		}
		parts = append(parts, fmt.Sprintf("%s: %d+%d rows, %v", where, l.Before, l.After, l.End))
		depth++
	}
	return strings.Join(parts, "; ")
}

var (
	warningRE = regexp.MustCompile(`(?m)^.*WARNING:  faultext.*$`)
	fatalRE   = regexp.MustCompile(`(?m)^.*(FATAL|ERROR):  .*$`)
)

// fatals returns the first n ERROR and FATAL lines of the log.
func fatals(c *pgtest.Cluster, n int) string {
	return strings.Join(fatalRE.FindAllString(c.Log(), n), "\n")
}

// warnings returns the first n faultext warnings of the log.
func warnings(c *pgtest.Cluster, n int) string {
	return strings.Join(warningRE.FindAllString(c.Log(), n), "\n")
}
