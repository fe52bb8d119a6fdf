// Package bench is pggo's benchmark harness (issue 5): it measures a pggo
// Go background worker against the same loops written as a C background
// worker (the native baseline), an external Go client using jackc/pgx over
// the Unix socket, and PL/pgSQL, side by side on one throwaway cluster.
//
// Run it with `make bench`, which runs
//
//	go test -count=1 -timeout 20m -run '^TestBench$' -v ./bench -args -full
//
// and rewrites BENCHMARKS.md and bench/results.json. Without -full, TestBench
// is a smoke run (tiny sizes, one round, well under a minute) that `make
// test` runs with every other test, so that the harness, the C worker and
// the Go worker cannot rot: it fails if any contender fails a workload or
// returns a wrong row count or checksum.
//
// # How it works
//
// [Run] builds the Go extension (bench/gobench, with pggo's builder) and the
// C worker (bench/cbench/cbench.c, with cc and pg_config's flags), preloads
// both into one cluster started with package pgtest, and creates the tables
// and PL/pgSQL functions of the workloads. The two static workers sleep on
// their latches. To run a workload in a worker, the harness inserts a row
// into bench_jobs and wakes the worker with pggo_set_latch(pid); the worker
// runs the loop, measures it with a monotonic clock inside its own process,
// and writes the result into the same row, which the harness polls. The pgx
// contender is timed by the harness itself; the PL/pgSQL functions measure
// themselves with clock_timestamp().
//
// Each round restarts both workers (pg_terminate_backend; the postmaster
// restarts them a second later) and reconnects the client sessions, measures
// their idle memory, warms every contender up with small runs, then runs
// every workload for every contender in turn: go, c, pgx, plpgsql, go, c, ...
// Results are medians and min–max over the rounds, with ratios to the C
// worker.
//
// A workload a contender cannot run is reported, not failed: "not yet
// measurable" when pggo's API for it is not implemented (the Go worker
// returns such an error, so the workload is measured as soon as the API
// works), "n/a" when it does not apply (a client cannot launch a worker).
// To add a workload: a Workloads entry, its loop in bench/gobench (the
// workloads map), in bench/cbench/cbench.c (run_job) and, where it can be
// expressed, in the pgx and PL/pgSQL contenders (harness.go).
//
// # Flags
//
// After -args: -full (the real sizes, 7 rounds, writes the reports),
// -rounds N, -only w1,w2 (a subset of workloads), -perf DIR (after the
// rounds, record every Go and C workload once more with `perf record -g`
// and write `perf report` summaries to DIR), -md and -json (other output
// paths), -render (run nothing; rewrite BENCHMARKS.md from results.json and
// bench/analysis.md, the hand-written analysis it includes).
package bench

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Workload is one measured loop. N is its size in a full run, Smoke in a
// smoke run and in the warm-up of every round.
type Workload struct {
	Name  string // bench_jobs.workload, the key in results.json
	Title string // for BENCHMARKS.md
	Unit  string // what one operation is: "statement", "row", "launch"
	N     int64
	Smoke int64
	// PerOpFromJob: the per-operation time is not elapsed/N but computed
	// from per-operation records (launch latencies: their median).
	PerOpFromJob bool
}

// Workloads lists the workloads in the order a round runs them.
var Workloads = []Workload{
	{Name: "select1", Title: "`SELECT 1`, parsed and planned each time", Unit: "statement", N: 100_000, Smoke: 200},
	{Name: "queryrow", Title: "`QueryRow(\"SELECT 1\").Scan`: one value back, as users write it", Unit: "statement", N: 100_000, Smoke: 200},
	{Name: "select1_prepared", Title: "`SELECT 1`, prepared once", Unit: "statement", N: 100_000, Smoke: 200},
	{Name: "insert", Title: "single-row INSERT ×N in one transaction", Unit: "statement", N: 100_000, Smoke: 200},
	{Name: "insert_prepared", Title: "single-row INSERT, prepared once, ×N in one transaction", Unit: "statement", N: 100_000, Smoke: 200},
	{Name: "insert_tx", Title: "one transaction per single-row INSERT", Unit: "transaction", N: 10_000, Smoke: 50},
	{Name: "read", Title: "read rows of (int8, text, timestamptz, numeric) into values", Unit: "row", N: 1_000_000, Smoke: 2_000},
	{Name: "do", Title: "`bgworker.Do` round trip from a goroutine to the worker's thread (empty fn)", Unit: "round trip", N: 100_000, Smoke: 200},
	{Name: "launch", Title: "dynamic worker launch → its first line of code (median of N)", Unit: "launch", N: 50, Smoke: 3, PerOpFromJob: true},
	{Name: "queue_64", Title: "message queue: 64 B messages from a dynamic worker through one 64 kB shm_mq (launch included)", Unit: "message", N: 1_000_000, Smoke: 1_000},
	{Name: "queue_8k", Title: "message queue: 8 kB messages from a dynamic worker through one 64 kB shm_mq (launch included)", Unit: "message", N: 100_000, Smoke: 100},
	{Name: "bg_small", Title: "examples/background: `background_result(background_launch('SELECT 1'))` round trip", Unit: "round trip", N: 200, Smoke: 3},
	{Name: "bg_100k", Title: "examples/background: one query of N rows `(int, md5 text)` run in a worker, rows counted by the caller", Unit: "row", N: 100_000, Smoke: 1_000},
}

// QueueMessageSize is the message size of a queue_* workload.
func QueueMessageSize(workload string) int {
	if workload == "queue_8k" {
		return 8192
	}
	return 64
}

// Contender names, in the order every round runs them.
const (
	Go      = "go"      // the pggo Go worker (bench/gobench)
	C       = "c"       // the C worker (bench/cbench), the baseline
	PGX     = "pgx"     // an external Go client, jackc/pgx v5 over the Unix socket
	PLpgSQL = "plpgsql" // PL/pgSQL functions in a backend
)

// ContenderNames is the alternation order.
var ContenderNames = []string{Go, C, PGX, PLpgSQL}

// ErrNotYet marks a workload whose pggo API is not implemented yet.
var ErrNotYet = errors.New("not yet measurable")

// ErrNotApplicable marks a workload a contender cannot express.
var ErrNotApplicable = errors.New("n/a")

// Config chooses what Run does.
type Config struct {
	Full   bool // full sizes (Workload.N); false: Workload.Smoke
	Rounds int  // rounds of alternation; 0 means 7 (full) or 1 (smoke)
	// JobTimeout bounds one workload run; 0 means 5 minutes (full) or 60 s.
	JobTimeout time.Duration
	// PerfDir, if set, makes Run profile the Go and C workers with `perf
	// record` after the measured rounds, one extra run per workload, and
	// write the recordings and `perf report` summaries there.
	PerfDir string
	// Only restricts the run to these workloads (names); nil runs all.
	Only []string
	// Logf reports progress (nil: quiet).
	Logf func(format string, args ...any)
}

func (c *Config) size(w Workload) int64 {
	if c.Full {
		return w.N
	}
	return w.Smoke
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// Sample is one measured run of a workload by a contender.
type Sample struct {
	Round     int   `json:"round"`
	ElapsedNS int64 `json:"elapsed_ns"`
	// CPUNS is the worker process's CPU time during the run, all threads
	// (Go and C workers only): less sensitive than ElapsedNS to other load
	// on the machine, and it includes the Go runtime's background work.
	CPUNS   int64   `json:"cpu_ns,omitempty"`
	PerOpNS float64 `json:"per_op_ns"`
	Rows    int64   `json:"rows"`
	// Memory of the process that ran the loop (the worker, or the backend
	// serving the client), kB from /proc/PID/status: before, after, and the
	// peak during the run (VmHWM, reset through /proc/PID/clear_refs first).
	RSSBeforeKB int64 `json:"rss_before_kb"`
	RSSAfterKB  int64 `json:"rss_after_kb"`
	HWMKB       int64 `json:"hwm_kb"`
	AnonAfterKB int64 `json:"anon_after_kb"` // RssAnon: private memory
	// Go worker only: allocations during the run (runtime.MemStats).
	GoMallocs    int64 `json:"go_mallocs,omitempty"`
	GoAllocBytes int64 `json:"go_alloc_bytes,omitempty"`
	GoGCs        int64 `json:"go_gcs,omitempty"`
	// LaunchNS are the individual launch latencies (launch only).
	LaunchNS []int64 `json:"launch_ns,omitempty"`
}

// Results is everything a run measured; Summarize turns it into statistics.
type Results struct {
	Mode     string
	Rounds   int
	Started  time.Time
	Duration time.Duration
	Machine  Machine
	// Samples[workload][contender] in round order.
	Samples map[string]map[string][]Sample
	// Skipped[workload][contender] is why a contender did not run it.
	Skipped map[string]map[string]string
	// IdleRSSKB and IdleAnonKB [contender]: VmRSS and RssAnon of a fresh
	// worker (or backend) per round.
	IdleRSSKB  map[string][]int64
	IdleAnonKB map[string][]int64
	Sizes      map[string]int64
	// Scaling [contender]: one read per ScalingSizes entry (Go and C, full runs).
	Scaling map[string][]Sample `json:"scaling,omitempty"`
}

// Machine describes where the numbers were measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	Postgres string `json:"postgres"`
	Go       string `json:"go"`
	Commit   string `json:"commit,omitempty"`
}

// Run builds the contenders, starts one cluster and runs the rounds. It
// fails t if anything breaks, including a contender returning a wrong
// result, so that a smoke run catches rot.
func Run(t testing.TB, cfg Config) *Results {
	t.Helper()
	if cfg.Rounds <= 0 {
		cfg.Rounds = 1
		if cfg.Full {
			cfg.Rounds = 7
		}
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = time.Minute
		if cfg.Full {
			cfg.JobTimeout = 5 * time.Minute
		}
	}
	ctx := context.Background()
	started := time.Now()

	libs := buildAll(t, cfg)
	h := startCluster(t, cfg, libs)
	defer h.close()

	workloads := selected(cfg.Only)
	res := &Results{
		Mode:       map[bool]string{true: "full", false: "smoke"}[cfg.Full],
		Rounds:     cfg.Rounds,
		Started:    started,
		Machine:    machine(ctx, h.ctl),
		Samples:    map[string]map[string][]Sample{},
		Skipped:    map[string]map[string]string{},
		IdleRSSKB:  map[string][]int64{},
		IdleAnonKB: map[string][]int64{},
		Sizes:      map[string]int64{},
	}
	for _, w := range workloads {
		res.Samples[w.Name] = map[string][]Sample{}
		res.Skipped[w.Name] = map[string]string{}
		res.Sizes[w.Name] = cfg.size(w)
	}

	for round := 1; round <= cfg.Rounds; round++ {
		cfg.logf("round %d/%d: fresh workers and sessions", round, cfg.Rounds)
		if err := h.newRound(ctx, round > 1); err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, h.cluster.LogTail(40))
		}
		for _, c := range h.contenders {
			m, err := readMemory(c.pid())
			if err != nil {
				t.Fatalf("round %d: idle memory of %s: %v", round, c.name(), err)
			}
			res.IdleRSSKB[c.name()] = append(res.IdleRSSKB[c.name()], m.rss)
			res.IdleAnonKB[c.name()] = append(res.IdleAnonKB[c.name()], m.anon)
		}
		if cfg.Full {
			h.warmUp(t, ctx, workloads)
		}
		for _, w := range workloads {
			n := cfg.size(w)
			for _, c := range h.contenders {
				s, err := h.run(ctx, c, w, n)
				if errors.Is(err, ErrNotYet) || errors.Is(err, ErrNotApplicable) {
					res.Skipped[w.Name][c.name()] = err.Error()
					continue
				}
				if err != nil {
					t.Fatalf("round %d: %s %s (n=%d): %v\n--- server log tail ---\n%s",
						round, c.name(), w.Name, n, err, h.cluster.LogTail(40))
				}
				s.Round = round
				res.Samples[w.Name][c.name()] = append(res.Samples[w.Name][c.name()], s)
				cfg.logf("round %d: %-16s %-8s %12.0f ns/%s", round, w.Name, c.name(), s.PerOpNS, w.Unit)
			}
		}
	}
	if cfg.Full && len(res.Samples["read"]) > 0 {
		res.Scaling = h.scaling(t, ctx)
	}
	res.Duration = time.Since(started)

	if cfg.PerfDir != "" {
		h.profile(t, ctx, workloads)
	}
	h.cluster.AssertNoCrashRecovery(t)
	return res
}

// ScalingSizes are the result sizes of the scaling curve: time must grow
// linearly with rows, and memory stay flat while streaming.
var ScalingSizes = []int64{10_000, 100_000, 1_000_000, 10_000_000}

// scaling reads every ScalingSizes table once with the Go and the C worker.
func (h *harness) scaling(t testing.TB, ctx context.Context) map[string][]Sample {
	t.Helper()
	var read Workload
	for _, w := range Workloads {
		if w.Name == "read" {
			read = w
		}
	}
	out := map[string][]Sample{}
	for _, n := range ScalingSizes {
		if err := h.readTable(ctx, n); err != nil {
			t.Fatalf("scaling: %v", err)
		}
		for _, c := range h.contenders {
			if c.name() != Go && c.name() != C {
				continue
			}
			s, err := h.run(ctx, c, read, n)
			if err != nil {
				t.Fatalf("scaling: %s reading %d rows: %v\n%s", c.name(), n, err, h.cluster.LogTail(40))
			}
			h.cfg.logf("scaling: %-3s %9d rows %8.0f ns/row, peak %d kB", c.name(), n, s.PerOpNS, s.HWMKB)
			out[c.name()] = append(out[c.name()], s)
		}
	}
	return out
}

func selected(only []string) []Workload {
	if len(only) == 0 {
		return Workloads
	}
	var out []Workload
	for _, w := range Workloads {
		for _, o := range only {
			if w.Name == o {
				out = append(out, w)
			}
		}
	}
	return out
}

// sourceDir is the directory of this package's sources.
func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// machine describes the host; failures leave fields empty.
func machine(ctx context.Context, conn *pgx.Conn) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	conn.QueryRow(ctx, "SELECT version()").Scan(&m.Postgres)
	m.Commit = gitCommit()
	return m
}

// median of xs (sorted copy); xs must not be empty.
func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
