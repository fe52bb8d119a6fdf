package fault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/internal/build"
	"github.com/pggo/pggo/pgtest"
)

// builderCases maps each of faultext's bad builder cases (badinput.go) to
// the field and reason its error must name: `field: reason`.
var builderCases = map[string]string{
	"name-too-long":       `name: 96 bytes is too long: PostgreSQL keeps at most 95 bytes`,
	"name-empty":          `name: must not be empty`,
	"name-nul":            `name: contains a NUL byte`,
	"type-too-long":       `type: 96 bytes is too long: PostgreSQL keeps at most 95 bytes`,
	"type-nul":            `type: contains a NUL byte`,
	"function-too-long":   `function: 96 bytes is too long: PostgreSQL keeps at most 95 bytes`,
	"function-nul":        `function: contains a NUL byte`,
	"function-unknown":    `function: "faultext_nope" is not registered`,
	"function-not-c-name": `function: "faultext-noop" is not a C identifier`,
	"library-other":       `library: "plpgsql" is not this extension`,
	"library-nul":         `library: contains a NUL byte`,
	"extra-too-long":      `extra: 128 bytes is too long: PostgreSQL keeps at most 127 bytes`,
	"extra-nul":           `extra: contains a NUL byte`,
	"restart-fraction":    `restart time: 1.5s is not a whole number of seconds`,
	"restart-negative":    `restart time: -2s is negative`,
	"restart-too-long":    `restart time: \S+ is more than PostgreSQL's limit`,
	"start-invalid":       `start time: StartTime\(9\) is not one of`,
	"start-postmaster":    `start time: a worker with SPI access cannot start at PostmasterStart`,
	"notify-pid-negative": `notify pid: -1 is negative`,
}

func sortedCases() []string {
	var names []string
	for k := range builderCases {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TestBadBuilderDynamic: every bad builder field through LoadDynamic, in a
// worker, must return an error naming the field, and register nothing: a
// valid worker launched afterwards still finds one of the few free slots.
func TestBadBuilderDynamic(t *testing.T) {
	tb := track(t, "Bad worker definitions through LoadDynamic")
	tb.about("A worker calls `LoadDynamic` with each bad definition (every builder field: name, type, " +
		"function, library, extra (length and NUL), restart time, start time, notify pid). Each must fail " +
		"with a `*bgworker.ValidationError` naming the field; with only 2 free worker slots, a valid " +
		"`LoadDynamic` afterwards must still start, so nothing was registered.")
	// 1 static worker, the replication launcher, 2 free slots: fewer than
	// the cases, so a case that registered something would show.
	c := start(tb, map[string]string{"max_worker_processes": "4"}, "PGGO_FAULT_WORKERS=badinput:1")
	conn := c.Connect(tb)
	res := waitResults(tb, c, conn, "faultext badinput 0", "done", 30*time.Second)
	checked := 0
	for _, name := range sortedCases() {
		got, ok := res[name]
		if !ok {
			tb.Errorf("%s: not tried by the worker", name)
			continue
		}
		re := regexp.MustCompile(`^background worker "[^"]*": ` + builderCases[name])
		if !re.MatchString(got) {
			tb.Errorf("%s: LoadDynamic returned %q, want a match for %q", name, got, re)
		}
		checked++
	}
	for k := range res {
		if _, ok := builderCases[k]; !ok && k != "control" && k != "done" {
			tb.Errorf("the worker tried case %q, which the test does not know", k)
		}
	}
	tb.key("bad definitions refused by LoadDynamic", "%d of %d", checked, len(builderCases))
	tb.fig("valid LoadDynamic afterwards", "%s", res["control"])
	if !strings.HasPrefix(res["control"], "started") {
		tb.Errorf("a valid worker could not be launched after the bad ones: %s", res["control"])
	}
	tb.noCrash(c)
}

// TestBadBuilderStatic: every bad builder field through Load in OnInit must
// stop the server from starting, with a FATAL naming the worker and the
// field; the library case also with the extension installed under a path
// longer than bgw_library_name holds.
func TestBadBuilderStatic(t *testing.T) {
	tb := track(t, "Bad worker definitions at server start")
	tb.about("Each bad definition `Load`ed from `pggo.OnInit` (the hook ignores the error): the server must " +
		"refuse to start, with a FATAL naming the worker and the field. Also the extension built under a " +
		"directory whose path exceeds `bgw_library_name`'s 95 bytes.")
	lib := faultext(tb)
	type attempt struct {
		name    string
		loader  string
		env     []string
		want    string
		refused bool
		log     string
	}
	var attempts []*attempt
	for _, name := range sortedCases() {
		attempts = append(attempts, &attempt{name: name, loader: lib.Loader,
			env: []string{"PGGO_FAULT_BADINPUT=" + name}, want: builderCases[name]})
	}
	// The library's own path too long: build it where the path is long.
	long := filepath.Join(os.TempDir(), "pggo-fault-"+strings.Repeat("l", 100))
	os.RemoveAll(long)
	if err := os.MkdirAll(long, 0o755); err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(long)
	os.Chmod(filepath.Dir(long), 0o755)
	longLib, err := build.Build(context.Background(), build.Options{Dir: sourceDir("faultext"), Out: long, Name: "faultext"})
	if err != nil {
		tb.Fatal(err)
	}
	// PostgreSQL 17 made bgw_library_name MAXPGPATH long: there the path fits.
	if v, err := build.PGConfig(context.Background(), "", "--version"); err == nil && regexp.MustCompile(`PostgreSQL 1[0-6]\b`).MatchString(v) {
		attempts = append(attempts, &attempt{name: "library-path-too-long", loader: longLib.Loader,
			env:  []string{"PGGO_FAULT_WORKERS=spi:1"},
			want: `library: the extension's path "[^"]+" is \d+ bytes; this PostgreSQL keeps at most 95 bytes`})
	}

	// Two at a time: each is a server start that fails at once.
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, a := range attempts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// A sub-test only for the cluster's lifetime and cleanup.
			t.Run(a.name, func(st *testing.T) {
				c, err := pgtest.StartE(st, pgtest.Options{Preload: []string{a.loader}, Env: a.env})
				a.refused = err != nil && !c.Running()
				a.log = c.Log()
			})
		}()
	}
	wg.Wait()
	refused := 0
	for _, a := range attempts {
		re := regexp.MustCompile(`FATAL:  pggo: \S+: (OnInit: )?background worker "[^"]*": ` + a.want)
		switch {
		case !a.refused:
			tb.Errorf("%s: the server started", a.name)
		case !re.MatchString(a.log):
			tb.Errorf("%s: the log does not name the field (want %q):\n%s", a.name, re, lastLines(a.log, 6))
		default:
			refused++
		}
	}
	tb.key("bad definitions that stopped the server, naming the field", "%d of %d", refused, len(attempts))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// paramCases maps each of faultext's parameter cases (params.go) to the
// outcome it must have: never a crash; an error (a *pggo.Error as "error
// SQLSTATE ...", a Go error as "go error: ...") where PostgreSQL would
// refuse the value; the value where it is valid.
var paramCases = map[string]string{
	"int2 overflow (Exec)":                        `^error 22003 `,
	"int2 overflow (Prepare int2)":                `^error 22003 `,
	"int2 underflow (Prepare int2)":               `^error 22003 `,
	"int2 from int8 in range":                     `^ok -128$`,
	"int4 overflow (Exec)":                        `^error 22003 `,
	"int4 overflow (Prepare int4)":                `^error 22003 `,
	"uint64 above int8":                           `^go error: .*out of range for bigint`,
	"real overflow (Exec)":                        `^error 22003 `,
	"real overflow (Prepare real)":                `^error 22003 `,
	"real underflow (Prepare real)":               `^error 22003 `,
	"numeric overflow (Exec string)":              `^error 22003 `,
	"numeric overflow (Prepare numeric)":          `^error 22003 `,
	"float into int4 (Prepare int4)":              `^error (22003|22P02) `,
	"time into int4 (Prepare int4)":               `^(error \w{5} |go error: )`,
	"bytea into int4 (Prepare int4)":              `^(error 42804 |go error: )`,
	"NUL in string (Exec)":                        `^(go error: .*NUL|error 22021 )`,
	"NUL in string (Prepare text)":                `^(go error: .*NUL|error 22021 )`,
	"NUL in bytea":                                `^ok 3$`,
	"invalid UTF-8 (Exec)":                        `^(error 22021 |go error: .*UTF-8)`,
	"invalid UTF-8 (Prepare text)":                `^(error 22021 |go error: .*UTF-8)`,
	"truncated UTF-8":                             `^(error 22021 |go error: .*UTF-8)`,
	"invalid UTF-8 in text[]":                     `^(error 22021 |go error: .*UTF-8)`,
	"time after 294276 AD":                        `^(go error: .*timestamp range|error 22008 )`,
	"time before 4714 BC":                         `^(go error: .*timestamp range|error 22008 )`,
	"last date of timestamp range (Prepare date)": `^ok 294276-12-31$`,
	"unsupported struct":                          `^go error: .*unsupported Go type`,
	"unsupported chan":                            `^go error: .*unsupported Go type`,
	"unsupported func":                            `^go error: .*unsupported Go type`,
	"unsupported complex128":                      `^go error: .*unsupported Go type`,
	"map into jsonb":                              `^(ok \{"a": 1\}$|go error: .*unsupported Go type)`,
	"too few arguments":                           `^(error \w{5} |go error: )`,
	"too many arguments (Prepare int4)":           `^(error \w{5} |go error: )`,
	"unknown type OID (Prepare)":                  `^(error \w{5} |go error: )`,
	"huge string (Exec)":                          `^ok \d+$`,
	"huge string (Prepare text)":                  `^ok \d+$`,
	"string above 1 GB":                           `^(error (54000|XX000) |go error: )`, // PostgreSQL's own "invalid memory alloc request size" is XX000
	"NUL escape into jsonb":                       `^error 22P05 `,
	"NUL in JSON text into jsonb":                 `^(go error: .*NUL|error 22021 )`,
	"NUL in pgtype.Text":                          `^(go error: .*NUL|error 22021 )`,
	"NUL in text[] (Exec)":                        `^(go error: .*NUL|error 22021 |error 22P02 )`,
	"NUL in text[] (Prepare text[])":              `^(go error: .*NUL|error 22021 |error 22P02 )`,
}

// TestBadParams sends every kind of bad SPI parameter (integers out of
// range for int2/int4, float overflow into real, NUL bytes, invalid UTF-8,
// huge strings, times out of range, unsupported Go types, wrong argument
// counts) through spi.Exec and spi.Prepare: each must give an error, or the
// right value, never a crash; and the worker must still commit afterwards.
func TestBadParams(t *testing.T) {
	tb := track(t, "Bad SPI parameters")
	tb.about("A worker sends each bad parameter through `spi.Exec`'s path and `spi.Prepare` with declared " +
		"types, one transaction each: integers out of range, float overflow and underflow into `real`, " +
		"numeric overflow, mismatched kinds, NUL bytes (string, `pgtype.Text`, `text[]`, jsonb), invalid " +
		"UTF-8, times outside PostgreSQL's range, unsupported Go types, wrong argument counts, unknown type " +
		"OIDs, huge strings (and, in the soak run, one above 1 GB). Each must end as PostgreSQL would treat " +
		"the value (an error, or the value stored), never a crash; afterwards the worker must still commit.")
	huge := pick(16<<20, 256<<20)
	// Restarted after a crash, the worker records the case that crashed
	// and goes on with the others.
	env := []string{"PGGO_FAULT_WORKERS=params:1", "PGGO_FAULT_RESTART=1", fmt.Sprintf("PGGO_FAULT_HUGE=%d", huge)}
	if soak() {
		env = append(env, "PGGO_FAULT_SOAK=1")
	}
	c := start(tb, nil, env...)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	var res map[string]string
	pgtest.Eventually(tb, pick(120*time.Second, 20*time.Minute), "the params worker to finish", func() (bool, error) {
		var err error
		if conn == nil || conn.IsClosed() {
			// A crash ends every connection: connect again once the
			// server is back.
			if conn, err = pgx.Connect(context.Background(), c.ConnString()); err != nil {
				return false, err
			}
		}
		if res, err = results(conn, "faultext params 0"); err != nil {
			conn.Close(context.Background())
			return false, err
		}
		return until(res["done"] != "", "%d results so far", len(res))
	})
	var crashedBy []string
	for k, v := range res {
		if v == "crashed the server" {
			crashedBy = append(crashedBy, k)
		}
	}
	sort.Strings(crashedBy)
	if len(crashedBy) > 0 {
		tb.Errorf("%d cases crashed the server: %s\n%s", len(crashedBy), strings.Join(crashedBy, ", "), crashSummary(c, 2*len(crashedBy)+2))
	}
	ok := 0
	for name, want := range paramCases {
		if (name == "string above 1 GB" || name == "NUL in text[] (Prepare text[])") && !soak() {
			continue
		}
		got, found := res[name]
		switch {
		case !found:
			tb.Errorf("%s: no outcome recorded", name)
		case !regexp.MustCompile(want).MatchString(got):
			tb.Errorf("%s: %s (want a match for %s)", name, got, want)
		default:
			ok++
		}
	}
	for k := range res {
		if _, found := paramCases[k]; !found && k != "after" && k != "done" && !strings.HasPrefix(k, "started: ") {
			tb.Errorf("the worker ran case %q, which the test does not know", k)
		}
	}
	var names []string
	for k := range res {
		if k != "after" && k != "done" && !strings.HasPrefix(k, "started: ") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for _, k := range names {
		tb.fig("param: "+k, "%s", res[k])
	}
	tb.key("cases with the right outcome", "%d of %d", ok, len(names))
	if res["after"] != "committed" {
		tb.Errorf("the worker's commit after the cases is missing: a bad parameter broke its transactions")
	}
	tb.noCrash(c)
}

// results reads a worker's fault_results, by key.
func results(conn *pgx.Conn, worker string) (map[string]string, error) {
	rows, err := conn.Query(context.Background(), "SELECT key, value FROM fault_results WHERE worker = $1 ORDER BY at", worker)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, rows.Err()
}
