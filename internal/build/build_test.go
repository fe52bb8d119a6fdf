package build

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// writePackage writes a main package made of files (name -> source).
func writePackage(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const registrations = `package main

import (
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
)

func init() {
	bgworker.RegisterFunction("ticker_main", nil)
	bgworker.RegisterFunction("job_main", nil)
	fmgr.Register("job_launch", "() RETURNS int4", nil)
}

func main() {}
`

// A SetFunction literal naming no registered function fails the build at
// its file and line, with the server's message.
func TestSetFunctionTypoFailsBuild(t *testing.T) {
	dir := writePackage(t, map[string]string{
		"main.go": registrations,
		"workers.go": `package main

import "github.com/pggo/pggo/bgworker"

func load() error {
	return bgworker.New("ticker").
		SetType("ticker").
		SetFunction("tickr_main").
		Load()
}
`,
	})
	_, err := FindExports(dir)
	if err == nil {
		t.Fatal("FindExports accepted SetFunction(\"tickr_main\")")
	}
	want := regexp.QuoteMeta(filepath.Join(dir, "workers.go")) + `:8:15: SetFunction\("tickr_main"\): ` +
		regexp.QuoteMeta(`"tickr_main" is not registered: call bgworker.RegisterFunction("tickr_main", ...) in an init function`) +
		regexp.QuoteMeta(" (registered worker functions: job_main, ticker_main)")
	if !regexp.MustCompile(want).MatchString(err.Error()) {
		t.Fatalf("error %q\ndoes not match %q", err, want)
	}
}

// The usual ways of holding a Builder are all recognized.
func TestSetFunctionForms(t *testing.T) {
	cases := map[string]string{
		"alias":     `import bg "github.com/pggo/pggo/bgworker"; func f() { bg.New("x").SetFunction("nope") }`,
		"variable":  `import "github.com/pggo/pggo/bgworker"; func f() { b := bgworker.New("x").EnableSPIAccess(); b.SetFunction("nope") }`,
		"var decl":  `import "github.com/pggo/pggo/bgworker"; var b = bgworker.New("x"); func f() { b.SetFunction("nope") }`,
		"parameter": `import "github.com/pggo/pggo/bgworker"; func f(b *bgworker.Builder) { b.SetType("t").SetFunction("nope") }`,
		"field":     `import "github.com/pggo/pggo/bgworker"; type s struct{ b *bgworker.Builder }; func (x s) f() { x.b.SetFunction("nope") }`,
		"function":  `import "github.com/pggo/pggo/bgworker"; func mk() *bgworker.Builder { return bgworker.New("x") }; func f() { mk().SetFunction("nope") }`,
		"sql func":  `import "github.com/pggo/pggo/bgworker"; func f() { bgworker.New("x").SetFunction("job_launch") }`,
	}
	for name, src := range cases {
		t.Run(name, func(t *testing.T) {
			dir := writePackage(t, map[string]string{"main.go": registrations, "other.go": "package main\n" + src + "\n"})
			_, err := FindExports(dir)
			if err == nil || !strings.Contains(err.Error(), "is not registered: call bgworker.RegisterFunction(") {
				t.Fatalf("got %v, want the not-registered error", err)
			}
			if name == "sql func" && !strings.Contains(err.Error(), "it is a SQL function") {
				t.Errorf("error does not say job_launch is a SQL function: %v", err)
			}
		})
	}
}

// Registered names, computed names and other types' SetFunction pass.
func TestSetFunctionAccepted(t *testing.T) {
	dir := writePackage(t, map[string]string{
		"main.go": registrations,
		"other.go": `package main

import (
	"os"

	"github.com/pggo/pggo/bgworker"
)

type menu struct{}

func (menu) SetFunction(string) {}

func f() {
	bgworker.New("a").SetFunction("ticker_main")
	b := bgworker.New("b")
	b.SetFunction("job_" + "main")
	b.SetFunction(os.Getenv("FN")) // the server checks computed names
	var m menu
	m.SetFunction("not a worker at all")
}
`,
	})
	ex, err := FindExports(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ex.Workers, ",") != "job_main,ticker_main" || len(ex.SQL) != 1 {
		t.Fatalf("exports %+v", ex)
	}
}

// The repository's own extensions pass the check.
func TestSetFunctionRepositoryExtensions(t *testing.T) {
	for _, dir := range []string{"../../examples/worker_spi", "../../examples/dynamic", "../testext", "../testsql", "../../bench/gobench"} {
		if _, err := FindExports(dir); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}
