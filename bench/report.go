package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Stat is the median and range of a set of samples.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func statOf(xs []float64) *Stat {
	if len(xs) == 0 {
		return nil
	}
	s := &Stat{Median: median(xs), Min: math.Inf(1), Max: math.Inf(-1), N: len(xs)}
	for _, x := range xs {
		s.Min = math.Min(s.Min, x)
		s.Max = math.Max(s.Max, x)
	}
	return s
}

// Entry is one contender's result for one workload.
type Entry struct {
	// Status is "ok", or why there is no number: "not yet measurable: ..."
	// or "n/a: ...".
	Status  string `json:"status"`
	PerOpNS *Stat  `json:"per_op_ns,omitempty"`
	// OpsPerSec is 1e9 / PerOpNS.Median.
	OpsPerSec float64 `json:"ops_per_sec,omitempty"`
	// RatioToC is this contender's throughput relative to the C worker
	// (above 1 is faster than C): the median over the rounds of the C
	// worker's time per operation divided by this contender's in the same
	// round, which cancels drift of the machine's speed between rounds.
	RatioToC float64 `json:"ratio_to_c,omitempty"`
	// CPUPerOpNS and CPURatioToC are the same from the worker process's CPU
	// time (all threads), Go and C workers only.
	CPUPerOpNS  *Stat   `json:"cpu_per_op_ns,omitempty"`
	CPURatioToC float64 `json:"cpu_ratio_to_c,omitempty"`
	// Go worker only: median allocations and bytes per operation.
	GoAllocsPerOp float64 `json:"go_allocs_per_op,omitempty"`
	GoBytesPerOp  float64 `json:"go_bytes_per_op,omitempty"`
	// Memory after the run (VmRSS, RssAnon) and peak (VmHWM), read only, kB.
	RSSAfterKB  *Stat    `json:"rss_after_kb,omitempty"`
	AnonAfterKB *Stat    `json:"anon_after_kb,omitempty"`
	HWMKB       *Stat    `json:"hwm_kb,omitempty"`
	Samples     []Sample `json:"samples,omitempty"`
}

// launches returns every launch latency of every round.
func (e *Entry) launches() []float64 {
	var out []float64
	for _, s := range e.Samples {
		for _, l := range s.LaunchNS {
			out = append(out, float64(l))
		}
	}
	return out
}

// WorkloadSummary is one workload with every contender's entry.
type WorkloadSummary struct {
	Name       string            `json:"name"`
	Title      string            `json:"title"`
	Unit       string            `json:"unit"`
	N          int64             `json:"n"`
	Contenders map[string]*Entry `json:"contenders"`
}

// Target is one of the targets (issues 5 and 10), checked against this run.
type Target struct {
	Name   string `json:"name"`
	Want   string `json:"want"`
	Got    string `json:"got"`
	Status string `json:"status"` // "met", "missed", "not yet measurable"
}

// Summary is what results.json holds and BENCHMARKS.md shows.
type Summary struct {
	Mode      string             `json:"mode"`
	Rounds    int                `json:"rounds"`
	Started   time.Time          `json:"started"`
	DurationS float64            `json:"duration_s"`
	Machine   Machine            `json:"machine"`
	Order     []string           `json:"contender_order"`
	Workloads []*WorkloadSummary `json:"workloads"`
	// IdleRSSKB and IdleAnonKB: VmRSS and RssAnon (private memory) of a
	// fresh worker (or, for pgx and plpgsql, a fresh backend) connected
	// and waiting.
	IdleRSSKB  map[string]*Stat `json:"idle_rss_kb"`
	IdleAnonKB map[string]*Stat `json:"idle_anon_kb"`
	Targets    []Target         `json:"targets"`
	// Scaling [contender]: reads at ScalingSizes (Go and C).
	Scaling map[string][]Sample `json:"scaling,omitempty"`
}

// Summarize computes medians, ranges, ratios and the targets.
func Summarize(r *Results) *Summary {
	s := &Summary{
		Mode: r.Mode, Rounds: r.Rounds, Started: r.Started, DurationS: r.Duration.Seconds(),
		Machine: r.Machine, Order: ContenderNames,
		IdleRSSKB: map[string]*Stat{}, IdleAnonKB: map[string]*Stat{},
		Scaling: r.Scaling,
	}
	for _, c := range ContenderNames {
		if st := statOf(floats(r.IdleRSSKB[c])); st != nil {
			s.IdleRSSKB[c] = st
		}
		if st := statOf(floats(r.IdleAnonKB[c])); st != nil {
			s.IdleAnonKB[c] = st
		}
	}
	for _, w := range Workloads {
		samples, ok := r.Samples[w.Name]
		if !ok {
			continue
		}
		ws := &WorkloadSummary{Name: w.Name, Title: w.Title, Unit: w.Unit, N: r.Sizes[w.Name], Contenders: map[string]*Entry{}}
		for _, c := range ContenderNames {
			e := &Entry{}
			ws.Contenders[c] = e
			if why, skipped := r.Skipped[w.Name][c]; skipped && len(samples[c]) == 0 {
				e.Status = why
				continue
			}
			if len(samples[c]) == 0 {
				e.Status = "not run"
				continue
			}
			e.Status = "ok"
			e.Samples = samples[c]
			var per, cpu, allocs, bytes, rss, anon, hwm []float64
			for _, smp := range samples[c] {
				per = append(per, smp.PerOpNS)
				ops := float64(smp.Rows)
				if w.Name == "launch" || ops == 0 {
					ops = 1
				}
				if smp.CPUNS > 0 && w.Name != "launch" {
					cpu = append(cpu, float64(smp.CPUNS)/ops)
				}
				allocs = append(allocs, float64(smp.GoMallocs)/ops)
				bytes = append(bytes, float64(smp.GoAllocBytes)/ops)
				rss = append(rss, float64(smp.RSSAfterKB))
				anon = append(anon, float64(smp.AnonAfterKB))
				hwm = append(hwm, float64(smp.HWMKB))
			}
			e.PerOpNS = statOf(per)
			e.CPUPerOpNS = statOf(cpu)
			if e.PerOpNS.Median > 0 {
				e.OpsPerSec = 1e9 / e.PerOpNS.Median
			}
			if c == Go {
				e.GoAllocsPerOp = median(allocs)
				e.GoBytesPerOp = median(bytes)
			}
			if w.Name == "read" {
				e.RSSAfterKB = statOf(rss)
				e.AnonAfterKB = statOf(anon)
				e.HWMKB = statOf(hwm)
			}
		}
		if base := ws.Contenders[C]; base.PerOpNS != nil {
			for _, e := range ws.Contenders {
				if e.PerOpNS != nil {
					e.RatioToC = pairedRatio(base.Samples, e.Samples, perOp)
				}
				if e.CPUPerOpNS != nil && base.CPUPerOpNS != nil {
					e.CPURatioToC = pairedRatio(base.Samples, e.Samples, cpuPerOp)
				}
			}
		}
		s.Workloads = append(s.Workloads, ws)
	}
	s.Targets = targets(s)
	return s
}

func perOp(s Sample) float64 { return s.PerOpNS }

func cpuPerOp(s Sample) float64 {
	if s.Rows == 0 {
		return 0
	}
	return float64(s.CPUNS) / float64(s.Rows)
}

// pairedRatio is the median over rounds of base's cost per operation over
// x's in the same round.
func pairedRatio(base, x []Sample, cost func(Sample) float64) float64 {
	byRound := map[int]float64{}
	for _, b := range base {
		byRound[b.Round] = cost(b)
	}
	var rs []float64
	for _, smp := range x {
		if b, ok := byRound[smp.Round]; ok && cost(smp) > 0 && b > 0 {
			rs = append(rs, b/cost(smp))
		}
	}
	if len(rs) == 0 {
		return 0
	}
	return median(rs)
}

func floats(xs []int64) []float64 {
	var out []float64
	for _, x := range xs {
		out = append(out, float64(x))
	}
	return out
}

func (s *Summary) workload(name string) *WorkloadSummary {
	for _, w := range s.Workloads {
		if w.Name == name {
			return w
		}
	}
	return nil
}

// targets checks the targets of issues 5 and 10.
func targets(s *Summary) []Target {
	var ts []Target
	notYet := func(name, want, why string) {
		ts = append(ts, Target{Name: name, Want: want, Got: why, Status: "not yet measurable"})
	}
	check := func(name, want, got string, ok bool) {
		st := "met"
		if !ok {
			st = "missed"
		}
		ts = append(ts, Target{Name: name, Want: want, Got: got, Status: st})
	}
	// Issue 10: the paths users write first must reach the C worker that
	// re-plans every call and come near PL/pgSQL's cached plans; prepared
	// statements near the prepared C worker; reading well ahead of pgx.
	perStatement := []struct {
		name    string
		vsC     float64
		vsPLpgS float64 // 0: not a target
	}{
		{"select1", 0.95, 0},
		{"queryrow", 1.0, 0.9},
		{"select1_prepared", 0.95, 0},
		{"insert", 1.0, 0.9},
		{"insert_prepared", 0.95, 0},
		{"insert_tx", 0.95, 0},
	}
	for _, ps := range perStatement {
		w := s.workload(ps.name)
		if w == nil {
			continue
		}
		g, c, pl := w.Contenders[Go], w.Contenders[C], w.Contenders[PLpgSQL]
		wantC := fmt.Sprintf("≥ %.2f× C throughput", ps.vsC)
		if g.PerOpNS == nil || c.PerOpNS == nil {
			notYet(ps.name+": Go vs C", wantC, g.Status)
			continue
		}
		check(ps.name+": Go vs C", wantC,
			fmt.Sprintf("%.3f× (CPU time: %.3f×)", g.RatioToC, g.CPURatioToC), g.RatioToC >= ps.vsC)
		if ps.vsPLpgS > 0 && pl.PerOpNS != nil {
			r := pl.PerOpNS.Median / g.PerOpNS.Median
			check(ps.name+": Go vs PL/pgSQL", fmt.Sprintf("≥ %.1f× PL/pgSQL throughput", ps.vsPLpgS),
				fmt.Sprintf("%.2f×", r), r >= ps.vsPLpgS)
		}
	}
	if w := s.workload("read"); w != nil {
		g, c, p := w.Contenders[Go], w.Contenders[C], w.Contenders[PGX]
		if g.PerOpNS != nil && c.PerOpNS != nil {
			check(fmt.Sprintf("read %d rows: Go vs C", w.N), "≥ 0.8× C throughput",
				fmt.Sprintf("%.3f× (CPU time: %.3f×)", g.RatioToC, g.CPURatioToC), g.RatioToC >= 0.8)
			if p.PerOpNS != nil {
				r := p.PerOpNS.Median / g.PerOpNS.Median
				check(fmt.Sprintf("read %d rows: Go vs pgx", w.N), "≥ 1.5× pgx throughput", fmt.Sprintf("%.2f×", r), r >= 1.5)
			}
			check("read: Go allocations per row", "O(1) beyond the values (the two strings: 2 allocs)",
				fmt.Sprintf("%.2f allocs, %.0f B per row", g.GoAllocsPerOp, g.GoBytesPerOp), g.GoAllocsPerOp < 2.5)
		}
	}
	if w := s.workload("launch"); w != nil {
		g, c := w.Contenders[Go], w.Contenders[C]
		if g.PerOpNS != nil && c.PerOpNS != nil {
			d := (g.PerOpNS.Median - c.PerOpNS.Median) / 1e6
			check("launch: Go vs C (median)", "≤ C + 3 ms", fmt.Sprintf("C %+.2f ms", d), d <= 3)
		} else {
			notYet("launch: Go vs C (median)", "≤ C + 3 ms", g.Status)
		}
	}
	if g, c := s.IdleRSSKB[Go], s.IdleRSSKB[C]; g != nil && c != nil {
		d := (g.Median - c.Median) / 1024
		got := fmt.Sprintf("C %+.1f MB", d)
		if ga, ca := s.IdleAnonKB[Go], s.IdleAnonKB[C]; ga != nil && ca != nil {
			got += fmt.Sprintf(" (private RssAnon: C %+.1f MB)", (ga.Median-ca.Median)/1024)
		}
		check("idle worker RSS: Go vs C (median)", "≤ C + 6 MB", got, d <= 6)
	}
	return ts
}

// ReadJSON reads a summary written by WriteJSON.
func ReadJSON(path string) (*Summary, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// WriteJSON writes the summary to path.
func WriteJSON(s *Summary, path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// fmtDur formats nanoseconds with a unit that keeps 3 significant digits.
func fmtDur(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.2f µs", ns/1e3)
	}
	return fmt.Sprintf("%.0f ns", ns)
}

func fmtRate(r float64) string {
	switch {
	case r >= 1e6:
		return fmt.Sprintf("%.2fM/s", r/1e6)
	case r >= 1e3:
		return fmt.Sprintf("%.1fk/s", r/1e3)
	}
	return fmt.Sprintf("%.1f/s", r)
}

func fmtMB(kb float64) string { return fmt.Sprintf("%.1f MB", kb/1024) }

var contenderTitles = map[string]string{
	Go:      "pggo Go worker",
	C:       "C worker (baseline)",
	PGX:     "pgx client (unix socket)",
	PLpgSQL: "PL/pgSQL",
}

// Markdown renders BENCHMARKS.md: the numbers, the targets, how they were
// measured, and the analysis from analysisPath (hand-written, optional).
func Markdown(s *Summary, analysisPath string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	p("# pggo benchmarks\n\n")
	p("Generated by `make bench` (bench/, issues 5 and 10) on %s in %.0f s: %s mode, %d rounds, contenders alternating %s in every round. ",
		s.Started.UTC().Format("2006-01-02 15:04 UTC"), s.DurationS, s.Mode, s.Rounds, strings.Join(s.Order, " → "))
	p("Machine: %d CPUs (%s), Linux %s, %s, %s", s.Machine.CPUs, s.Machine.CPUModel, s.Machine.Kernel,
		strings.SplitN(s.Machine.Postgres, " on ", 2)[0], s.Machine.Go)
	if s.Machine.Commit != "" {
		p(", commit %s (plus any uncommitted changes)", s.Machine.Commit)
	}
	p(". Machine-readable: `bench/results.json`.\n\n")
	if s.Mode != "full" {
		p("> **Smoke run: tiny sizes, not a measurement.** Run `make bench` for numbers.\n\n")
	}

	p("## Summary\n\n")
	p("Median time per operation over the rounds, and throughput relative to the C worker (×C: median of the per-round ratios; above 1 is faster than C).\n\n")
	p("| workload | N |")
	for _, c := range s.Order {
		p(" %s |", contenderTitles[c])
	}
	p("\n|---|---:|")
	for range s.Order {
		p("---:|")
	}
	p("\n")
	for _, w := range s.Workloads {
		p("| %s | %d |", w.Title, w.N)
		for _, c := range s.Order {
			e := w.Contenders[c]
			if e.PerOpNS == nil {
				p(" %s |", shortStatus(e.Status))
				continue
			}
			if e.RatioToC == 0 { // no C baseline (bgworker.Do)
				p(" %s/%s |", fmtDur(e.PerOpNS.Median), w.Unit)
				continue
			}
			p(" %s/%s (%.2f×C) |", fmtDur(e.PerOpNS.Median), w.Unit, e.RatioToC)
		}
		p("\n")
	}
	p("| idle VmRSS (private RssAnon); fresh worker, or the backend serving pgx and PL/pgSQL | |")
	for _, c := range s.Order {
		if st, an := s.IdleRSSKB[c], s.IdleAnonKB[c]; st != nil && an != nil {
			p(" %s (%s) |", fmtMB(st.Median), fmtMB(an.Median))
		} else {
			p(" — |")
		}
	}
	p("\n")
	if w := s.workload("read"); w != nil {
		p("| VmRSS (private RssAnon) after reading %d rows; peak VmHWM | |", w.N)
		for _, c := range s.Order {
			e := w.Contenders[c]
			if e.RSSAfterKB != nil {
				p(" %s (%s); %s |", fmtMB(e.RSSAfterKB.Median), fmtMB(e.AnonAfterKB.Median), fmtMB(e.HWMKB.Median))
			} else {
				p(" — |")
			}
		}
		p("\n")
	}
	p("\n")

	if len(s.Scaling[Go]) > 0 {
		p("## Scaling: reading N rows (one run each, after the rounds)\n\n")
		p("Rows of (int8, text, timestamptz, numeric) read through `spi.Query` (a cursor, 2000 rows a batch) by the Go worker, and by the C worker for reference. Time should grow linearly with N (flat ns/row) and memory stay flat.\n\n")
		p("| N | Go ns/row | Go elapsed | Go peak VmHWM | Go RssAnon after | C ns/row | C peak VmHWM |\n|---:|---:|---:|---:|---:|---:|---:|\n")
		for i, g := range s.Scaling[Go] {
			p("| %d | %.0f | %.3f s | %.1f MB | %.1f MB |", g.Rows, g.PerOpNS, float64(g.ElapsedNS)/1e9, float64(g.HWMKB)/1024, float64(g.AnonAfterKB)/1024)
			if cs := s.Scaling[C]; i < len(cs) {
				p(" %.0f | %.1f MB |", cs[i].PerOpNS, float64(cs[i].HWMKB)/1024)
			} else {
				p(" — | — |")
			}
			p("\n")
		}
		p("\nVmHWM includes the shared buffers a reader touches (the table's pages), which grows with N for every contender; RssAnon is the worker's private memory.\n\n")
	}
	p("## Targets (issues 5 and 10)\n\n| target | want | got | |\n|---|---|---|---|\n")
	for _, t := range s.Targets {
		mark := map[string]string{"met": "✅ met", "missed": "❌ missed"}[t.Status]
		if mark == "" {
			mark = "⏳ " + t.Status
		}
		p("| %s | %s | %s | %s |\n", t.Name, t.Want, t.Got, mark)
	}
	p("\n")

	p("## Details\n\n")
	for _, w := range s.Workloads {
		p("### %s (N = %d)\n\n", w.Title, w.N)
		p("| contender | median / %s | min – max | throughput | ×C | worker CPU / %s (×C) | notes |\n|---|---:|---:|---:|---:|---:|---|\n", w.Unit, w.Unit)
		for _, c := range s.Order {
			e := w.Contenders[c]
			if e.PerOpNS == nil {
				p("| %s | — | — | — | — | — | %s |\n", contenderTitles[c], e.Status)
				continue
			}
			cpu := "—"
			if e.CPUPerOpNS != nil {
				cpu = fmt.Sprintf("%s (%.2f)", fmtDur(e.CPUPerOpNS.Median), e.CPURatioToC)
			}
			var notes []string
			if strings.HasPrefix(w.Name, "queue_") {
				notes = append(notes, fmt.Sprintf("%.0f MB/s of %d B messages", e.OpsPerSec*float64(QueueMessageSize(w.Name))/1e6, QueueMessageSize(w.Name)))
			}
			if c == Go && w.Name != "launch" {
				notes = append(notes, fmt.Sprintf("%.2f Go allocs, %.0f B per %s", e.GoAllocsPerOp, e.GoBytesPerOp, w.Unit))
			}
			if e.RSSAfterKB != nil {
				notes = append(notes, fmt.Sprintf("VmRSS after %s, RssAnon after %s, peak VmHWM %s",
					fmtMB(e.RSSAfterKB.Median), fmtMB(e.AnonAfterKB.Median), fmtMB(e.HWMKB.Median)))
			}
			if all := e.launches(); len(all) > 0 {
				st := statOf(all)
				notes = append(notes, fmt.Sprintf("all %d launches: median %s, min %s, max %s", len(all),
					fmtDur(st.Median), fmtDur(st.Min), fmtDur(st.Max)))
			}
			ratio := "—" // no C baseline (bgworker.Do, examples/background)
			if e.RatioToC != 0 {
				ratio = fmt.Sprintf("%.3f", e.RatioToC)
			}
			p("| %s | %s | %s – %s | %s | %s | %s | %s |\n", contenderTitles[c], fmtDur(e.PerOpNS.Median),
				fmtDur(e.PerOpNS.Min), fmtDur(e.PerOpNS.Max), fmtRate(e.OpsPerSec), ratio, cpu, strings.Join(notes, "; "))
		}
		p("\n")
	}
	p("Idle memory over the rounds, kB, median (min – max):\n\n| contender | VmRSS | RssAnon |\n|---|---:|---:|\n")
	for _, c := range s.Order {
		if st, an := s.IdleRSSKB[c], s.IdleAnonKB[c]; st != nil && an != nil {
			p("| %s | %.0f (%.0f – %.0f) | %.0f (%.0f – %.0f) |\n", contenderTitles[c], st.Median, st.Min, st.Max, an.Median, an.Min, an.Max)
		}
	}
	p("\n")

	b.WriteString(method)
	if analysisPath != "" {
		if a, err := os.ReadFile(analysisPath); err == nil {
			b.WriteString("\n")
			b.Write(a)
		}
	}
	return b.String()
}

func shortStatus(s string) string {
	switch {
	case strings.HasPrefix(s, ErrNotYet.Error()):
		return "not yet measurable"
	case strings.HasPrefix(s, ErrNotApplicable.Error()):
		return "n/a"
	}
	return s
}

const method = `## How it is measured

- **One cluster, alternating contenders.** ` + "`make bench`" + ` starts one throwaway cluster of the PostgreSQL
  above (package pgtest; fsync off, autovacuum off, shared_buffers 512MB) with the pggo extension
  ` + "`bench/gobench`" + ` and the C worker ` + "`bench/cbench/cbench.c`" + ` preloaded. Every round restarts
  both workers (pg_terminate_backend; the postmaster restarts them) and reconnects the sessions,
  records their idle RSS, warms every contender up with small runs, then runs each workload for
  go, c, pgx, plpgsql in turn.
- **Where the clock is.** The Go and C workers time their loops inside their own process
  (Go's monotonic clock, CLOCK_MONOTONIC), from before the transaction starts to after it
  commits, and also report the CPU time their process used meanwhile (getrusage, all
  threads: the Go runtime's background threads count). The harness hands them jobs through
  the table bench_jobs and wakes them with pggo_set_latch; polling and result writing are
  outside the timed part. The pgx client is timed by the harness around its loop
  (BEGIN/COMMIT included). The PL/pgSQL functions time themselves with clock_timestamp().
- **Noise.** On a shared 2-core machine the wall times of single rounds vary by up to ±50 %;
  the ratios are medians of per-round ratios (each round's contenders run back to back), and
  the CPU-time ratio of the two workers is a cross-check less sensitive to other load.
- **The same loops.**
  - ` + "`SELECT 1`" + ` "planned each time": Go ` + "`spi.Exec(\"SELECT 1\")`" + ` as a user writes it (since issue 10
    spi's plan cache keeps the plan from the second call on, so Go no longer re-plans); C
    ` + "`SPI_execute(\"SELECT 1\", false, 0)`" + ` + SPI_freetuptable; pgx ` + "`conn.Exec(ctx, \"SELECT 1\")`" + `
    (simple protocol); PL/pgSQL ` + "`EXECUTE 'SELECT 1' INTO x`" + `. One transaction.
  - QueryRow: Go ` + "`spi.QueryRow(\"SELECT 1\").Scan(&x)`" + `; C ` + "`SPI_execute(\"SELECT 1\", true, 1)`" + `
    + SPI_getbinval (planned each call); pgx ` + "`conn.QueryRow(ctx, \"SELECT 1\").Scan(&x)`" + ` (prepared once per
    connection); PL/pgSQL ` + "`SELECT 1 INTO x`" + ` (cached plan). One transaction.
  - ` + "`SELECT 1`" + ` prepared: C SPI_prepare + SPI_execute_plan; pgx a named prepared statement;
    PL/pgSQL ` + "`PERFORM 1`" + ` (cached plan); Go ` + "`spi.Prepare`" + ` once, then ` + "`Stmt.Exec()`" + `.
  - INSERT: ` + "`INSERT INTO bench_ins_X(id, note) VALUES ($1, $2)`" + ` with (i, 'x'), no index. Go
    ` + "`spi.Exec(sql, i, \"x\")`" + ` (unprepared in the Go code; cached by spi's plan cache); C SPI_execute_with_args with
    int8/text (parsed and planned each call); pgx default mode (prepared once per connection);
    PL/pgSQL a static INSERT (cached plan). Prepared: Go ` + "`spi.Prepare`" + ` once and
    ` + "`Stmt.Exec(i, \"x\")`" + `, C SPI_prepare + SPI_execute_plan; pgx and PL/pgSQL run the same loop as
    for the plain INSERT, which already uses a cached plan. ×N in one transaction, or one transaction each
    (Go ` + "`bgworker.Transaction`" + `, C StartTransactionCommand … CommitTransactionCommand as
    worker_spi, pgx autocommit, PL/pgSQL a procedure with COMMIT).
  - Read: ` + "`SELECT id, t, ts, n FROM bench_read_N`" + ` (int8, md5 text, timestamptz, numeric(14,2)),
    every value copied out: Go ` + "`rows.Scan(&int64, &string, &time.Time, &string)`" + ` (spi.Query streams
    through a cursor, 2000 rows per fetch); C the same cursor and batch (SPI_cursor_open,
    SPI_cursor_fetch 2000) with SPI_getbinval, text_to_cstring and numeric_out into a per-row
    memory context; pgx the same Scan; PL/pgSQL a FOR loop (its cursor fetches 10 rows at a
    time) assigning to variables, with ` + "`n::text`" + `. Everyone sums the same checksum and the
    harness checks it.
  - Launch: the static worker starts N dynamic workers one after the other (each after the
    previous one exited); the clock is read just before RegisterDynamicBackgroundWorker (C) or
    ` + "`LoadDynamic`" + ` (Go), and again on the first line of the launched worker's function
    (CLOCK_REALTIME, which both processes share). The median of N per round.
  - Memory: VmRSS, RssAnon and VmHWM from /proc/PID/status of the worker (or of the backend
    serving the pgx and PL/pgSQL sessions), idle after start, and after the read. VmRSS counts
    the shared buffers a process has touched (about 100 MB once it has scanned the 1M-row
    table) and the pages of the libraries it maps, so RssAnon, its private memory, is what
    one more worker really costs; VmHWM is the peak VmRSS during the run (reset through
    /proc/PID/clear_refs before it).
- **Checks.** Every run returns its row count and checksum; inserts are counted in the table. A
  wrong result fails the run (` + "`go test ./bench`" + ` runs the same harness at tiny sizes in
  ` + "`make test`" + `).
`

func writeFile(path, content string) error {
	return os.WriteFile(filepath.Clean(path), []byte(content), 0o644)
}
