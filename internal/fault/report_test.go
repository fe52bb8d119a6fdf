package fault

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pggo/pggo/internal/build"
	"github.com/pggo/pggo/pgtest"
)

// scenario is one test's entry in the report.
type scenario struct {
	mu       sync.Mutex
	test     string
	title    string
	about    string
	status   string // PASS, FAIL, SKIP; "" while running
	failures []string
	figures  [][2]string
	keys     [][2]string // the headline figures, also in figures
	crashes  int         // crash recoveries seen, -1 if not counted
	expected int         // crash recoveries the scenario provokes on purpose
	took     time.Duration
}

var (
	reportMu  sync.Mutex
	scenarios []*scenario
)

func addScenario(test, title string) *scenario {
	s := &scenario{test: test, title: title, crashes: -1}
	reportMu.Lock()
	scenarios = append(scenarios, s)
	reportMu.Unlock()
	return s
}

func (s *scenario) fail(msg string) {
	s.mu.Lock()
	s.failures = append(s.failures, msg)
	s.mu.Unlock()
}

func (s *scenario) finish(failed, skipped bool, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.took = took
	switch {
	case failed:
		s.status = "FAIL"
	case skipped:
		s.status = "SKIP"
	default:
		s.status = "PASS"
	}
}

// about describes the scenario in the report.
func (t *tracked) about(text string) {
	t.res.mu.Lock()
	t.res.about = text
	t.res.mu.Unlock()
}

// fig records a figure for the report and logs it.
func (t *tracked) fig(name, format string, args ...any) {
	t.TB.Helper()
	v := fmt.Sprintf(format, args...)
	t.res.mu.Lock()
	t.res.figures = append(t.res.figures, [2]string{name, v})
	t.res.mu.Unlock()
	t.Logf("%s: %s", name, v)
}

// key records a headline figure: in the scenario's table and in the
// report's summary.
func (t *tracked) key(name, format string, args ...any) {
	t.TB.Helper()
	t.fig(name, format, args...)
	t.res.mu.Lock()
	t.res.keys = append(t.res.keys, t.res.figures[len(t.res.figures)-1])
	t.res.mu.Unlock()
}

// crashes records how many crash recoveries the scenario's cluster went
// through (the summary adds them up).
func (t *tracked) crashes(n int) {
	t.TB.Helper()
	t.res.mu.Lock()
	t.res.crashes = n
	t.res.mu.Unlock()
	t.fig("crash recoveries", "%d", n)
}

// noCrash records the cluster's crash recoveries and fails the test if
// there were any.
func (t *tracked) noCrash(c *pgtest.Cluster) {
	t.TB.Helper()
	t.crashes(recoveries(c))
	c.AssertNoCrashRecovery(t)
}

// expectCrashes says how many crash recoveries the scenario causes on
// purpose (SIGKILL of a worker), so the summary does not count them.
func (t *tracked) expectCrashes(n int) {
	t.res.mu.Lock()
	t.res.expected = n
	t.res.mu.Unlock()
}

// knownDefects names, for a scenario that fails, the defect of issue 9 its
// failure is expected to show until the fix lands. Shown only on FAIL, so a
// scenario that passes again drops its note by itself.
var knownDefects = map[string]string{
	"TestLedger": "Issue 9, silent loss of commits: a PostgreSQL ERROR raised inside an already-aborted " +
		"savepoint. One savepoint deep, it aborts the whole transaction instead of the savepoint; two or " +
		"more deep, it leaves PostgreSQL in a sub-aborted transaction while pggo believes it rolled back, " +
		"so later transactions lose their rows or run in the aborted one, until the worker dies with " +
		"FATAL \"BeginInternalSubTransaction: unexpected state SUBABORT\". TestLedgerWithoutAbortedErrors " +
		"(the same plan without that one kind of fault) passes.",
	"TestSIGTERMDuringLatchWait": "Issue 9, hang: a SIGTERM arriving while a statement waits on the latch " +
		"(pg_sleep, a lock wait) is consumed by that statement, and the next WaitLatch sleeps its whole " +
		"timeout (here the 6 s naptime). The row-lock workers end sooner only because the SIGALRM of " +
		"their deadlock timer happens to set the latch.",
	"TestStop": "Issue 9, hang: the SIGTERM of `pg_ctl stop` is lost the same way (see " +
		"TestSIGTERMDuringLatchWait); with `WaitLatch(-1)` the stop would never complete.",
	"TestLostWake": "Issue 9: `bgworker.Wake` during a latch-using statement is lost the same way as SIGTERM.",
	"TestBadParams": "Issue 9, server crash (b) and wrong data: a NUL byte in a `text[]` element crashes " +
		"the server (SIGSEGV in the parameter decoder, logged as signal 6 by Go's crash handler some 10 s " +
		"later); a prepared `real` parameter stores Infinity for 1e300 and 0 for 1e-300 instead of failing " +
		"with 22003 as the unprepared path does.",
}

// reportOrder is the order of the report's sections: the order,
// not the test files'.
var reportOrder = []string{
	"TestLedger", "TestLedgerWithoutAbortedErrors", "TestSignalStorm", "TestSIGTERMDuringLatchWait",
	"TestLostWake", "TestStop", "TestPostmasterKill", "TestWorkerKill", "TestPgbench",
	"TestBadBuilderDynamic", "TestBadBuilderStatic", "TestBadParams",
}

func orderOf(test string) int {
	for i, t := range reportOrder {
		if t == test {
			return i
		}
	}
	return len(reportOrder)
}

// reportPath is where the figures go: -reliability, or the temporary
// directory. Only a soak run may write RELIABILITY.md.
func reportPath() (string, error) {
	p := *reliability
	if p == "" {
		return filepath.Join(os.TempDir(), fmt.Sprintf("pggo-fault-figures-%s.md", pick("quick", "soak"))), nil
	}
	if filepath.Base(p) == "RELIABILITY.md" && !soak() {
		return "", fmt.Errorf("-reliability %s: only a soak run (-soak) writes RELIABILITY.md", p)
	}
	return p, nil
}

func writeReport() error {
	reportMu.Lock()
	defer reportMu.Unlock()
	if len(scenarios) == 0 {
		return nil
	}
	path, err := reportPath()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(render()), 0o644); err != nil {
		return err
	}
	fmt.Printf("fault: figures written to %s\n", path)
	return nil
}

func render() string {
	var b strings.Builder
	kind := pick("quick run (`go test ./internal/fault`)", "soak run (`make soak`)")
	fmt.Fprintf(&b, "# Reliability\n\n")
	fmt.Fprintf(&b, "What pggo's fault suite (`internal/fault`, issue 9) measured. Written by the %s;\n", kind)
	b.WriteString("`make soak` rewrites this file, so edit the suite, not the file.\n\n")
	fmt.Fprintf(&b, "- when: %s\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- source: %s\n", gitDescribe())
	fmt.Fprintf(&b, "- server: %s; %s; %d CPU cores\n", pgVersion(), runtime.Version(), runtime.NumCPU())
	b.WriteString("\nA FAIL below is a defect the scenario proves (or a regression): each failure\n" +
		"message says what went wrong, and a failure that shows one of issue 9's known defects\n" +
		"says which. Crash recoveries are counted from the server log.\n\n")

	sort.SliceStable(scenarios, func(i, j int) bool { return orderOf(scenarios[i].test) < orderOf(scenarios[j].test) })
	b.WriteString("## Summary\n\n| scenario | result | time |\n|---|---|---|\n")
	failed, unexpected := 0, 0
	for _, s := range scenarios {
		fmt.Fprintf(&b, "| %s (`%s`) | %s | %.1f s |\n", s.title, s.test, orDash(s.status), s.took.Seconds())
		if s.status == "FAIL" {
			failed++
		}
		if s.crashes > s.expected {
			unexpected += s.crashes - s.expected
		}
	}
	fmt.Fprintf(&b, "\n%d of %d scenarios failed. Crash recoveries not caused on purpose: %d.\n", failed, len(scenarios), unexpected)
	b.WriteString("\n## Headline figures\n\n| scenario | figure | value |\n|---|---|---|\n")
	for _, s := range scenarios {
		for _, k := range s.keys {
			fmt.Fprintf(&b, "| %s | %s | %s |\n", s.title, k[0], cell(k[1]))
		}
	}
	for _, s := range scenarios {
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		if s.about != "" {
			fmt.Fprintf(&b, "%s\n\n", s.about)
		}
		fmt.Fprintf(&b, "`%s`: **%s** in %.1f s.\n\n", s.test, orDash(s.status), s.took.Seconds())
		if note, ok := knownDefects[s.test]; ok && s.status == "FAIL" {
			fmt.Fprintf(&b, "Known defect: %s\n\n", note)
		}
		if len(s.figures) > 0 {
			b.WriteString("| figure | value |\n|---|---|\n")
			for _, f := range s.figures {
				fmt.Fprintf(&b, "| %s | %s |\n", f[0], cell(f[1]))
			}
			b.WriteString("\n")
		}
		if len(s.failures) > 0 {
			b.WriteString("Failures:\n\n")
			for i, f := range s.failures {
				if i == 8 {
					fmt.Fprintf(&b, "- ... and %d more\n", len(s.failures)-i)
					break
				}
				fmt.Fprintf(&b, "```\n%s\n```\n", clip(f, 12))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// cell makes a value fit in a Markdown table cell.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", "<br>").Replace(s)
}

// clip keeps the first n lines of s.
func clip(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("... (%d more lines)", len(lines)-n))
	}
	return strings.ReplaceAll(strings.Join(lines, "\n"), "```", "'''")
}

func gitDescribe() string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += " with local changes"
	}
	return "commit " + rev
}

func pgVersion() string {
	out, err := exec.Command(build.DefaultPGConfig(), "--version").Output()
	if err != nil {
		return "PostgreSQL (version unknown)"
	}
	return strings.TrimSpace(string(out))
}
