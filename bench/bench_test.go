package bench

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

var (
	full    = flag.Bool("full", false, "run the full benchmark (issue 5 sizes, 7 rounds) and write BENCHMARKS.md and bench/results.json")
	rounds  = flag.Int("rounds", 0, "rounds of alternation (default 7 with -full, 1 otherwise)")
	only    = flag.String("only", "", "comma-separated workloads to run (default all)")
	perfDir = flag.String("perf", "", "after the rounds, profile the Go and C workers with perf record into this directory")
	mdOut   = flag.String("md", "", "where -full writes the Markdown report (default ../BENCHMARKS.md)")
	jsonOut = flag.String("json", "", "where -full writes the JSON results (default results.json)")
	render  = flag.Bool("render", false, "run nothing: rewrite the Markdown report from the JSON results (after editing analysis.md)")
)

// TestBench runs the benchmark harness. By default (and with -short) it is
// a smoke run: tiny sizes, one round, every contender and workload, failing
// if any contender breaks or returns a wrong result. With -full it is the
// real benchmark (`make bench`) and writes BENCHMARKS.md and results.json.
func TestBench(t *testing.T) {
	if *full && testing.Short() {
		t.Fatal("-full and -short contradict each other")
	}
	md, js := *mdOut, *jsonOut
	if md == "" {
		md = filepath.Join(sourceDir(), "..", "BENCHMARKS.md")
	}
	if js == "" {
		js = filepath.Join(sourceDir(), "results.json")
	}
	analysis := filepath.Join(sourceDir(), "analysis.md")
	if *render {
		sum, err := ReadJSON(js)
		if err != nil {
			t.Fatal(err)
		}
		if err := writeFile(md, Markdown(sum, analysis)); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote %s from %s", md, js)
		return
	}
	cfg := Config{Full: *full, Rounds: *rounds, PerfDir: *perfDir, Logf: t.Logf}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	res := Run(t, cfg)
	sum := Summarize(res)

	// Every contender must have run every workload it can express.
	for _, w := range sum.Workloads {
		for _, c := range ContenderNames {
			e := w.Contenders[c]
			if e.Status != "ok" && !isSkipStatus(e.Status) {
				t.Errorf("%s %s: %s", w.Name, c, e.Status)
			}
		}
		// The Go-only workload (bgworker.Do) and the examples/background
		// round trips (called from a client session) have no C baseline.
		if e := w.Contenders[C]; e.Status != "ok" && w.Name != "do" && !strings.HasPrefix(w.Name, "bg_") {
			t.Errorf("%s: the C baseline did not run: %s", w.Name, e.Status)
		}
	}
	for _, tg := range sum.Targets {
		t.Logf("target %-40s want %-28s got %-30s %s", tg.Name, tg.Want, tg.Got, tg.Status)
	}
	if !*full {
		t.Logf("\n%s", Markdown(sum, ""))
		return
	}
	if err := WriteJSON(sum, js); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(md, Markdown(sum, analysis)); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s and %s", md, js)
}

func isSkipStatus(s string) bool {
	return strings.HasPrefix(s, ErrNotYet.Error()) || strings.HasPrefix(s, ErrNotApplicable.Error())
}
