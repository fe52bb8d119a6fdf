package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"text/template"
)

var newName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

const newUsage = `usage: pggo new [flags] NAME

Creates the directory NAME with a ready-to-build pggo extension: one
background worker that records a tick every second, and a test that builds
it, starts a real PostgreSQL with it preloaded and waits for a tick.
`

func runNew(args []string) error {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	src := fs.String("pggo", os.Getenv("PGGO_SOURCE"), "local pggo checkout to use with a go.mod replace (default: the one this pggo was built from, if any)")
	name, err := parse(fs, args, newUsage)
	if err != nil {
		return err
	}
	if name == "" {
		return badUsage(fs, newUsage, "NAME is missing")
	}
	base := filepath.Base(name)
	if !newName.MatchString(base) {
		return fmt.Errorf("pggo new: %q: use lower-case letters, digits and '_', starting with a letter (it names the library and its SQL objects)", base)
	}
	if _, err := os.Stat(name); err == nil {
		return fmt.Errorf("pggo new: %s already exists", name)
	}
	checkout := *src
	if checkout == "" {
		checkout = ownCheckout()
	}

	data := struct{ Name, Replace string }{Name: base}
	if checkout != "" {
		data.Replace = checkout
	}
	if err := os.MkdirAll(name, 0o755); err != nil {
		return err
	}
	for file, tmpl := range map[string]string{"go.mod": goModTmpl, "main.go": mainTmpl, "main_test.go": testTmpl} {
		var b bytes.Buffer
		if err := template.Must(template.New(file).Parse(tmpl)).Execute(&b, data); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(name, file), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "pggo new: created %s; resolving modules (go mod tidy)\n", name)
	tidy := exec.Command("go", "mod", "tidy")
	tidy.Dir = name
	if out, err := tidy.CombinedOutput(); err != nil {
		return fmt.Errorf("pggo new: go mod tidy in %s: %v\n%s", name, err, out)
	}
	fmt.Printf(`Created %[1]s. Next:
  cd %[1]s
  pggo run      # build, start a throwaway PostgreSQL with it preloaded, watch the ticks (Ctrl-C stops)
  pggo test     # its test, against a real PostgreSQL
`, name)
	return nil
}

// ownCheckout is the pggo source tree this binary was built from, for a
// replace directive while the module is not published.
func ownCheckout() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.Contains(string(mod), "module github.com/pggo/pggo\n") {
		return ""
	}
	return root
}

const goModTmpl = `module {{.Name}}

go 1.26

require github.com/pggo/pggo v0.0.0
{{if .Replace}}
// A local pggo checkout: drop this line once the module can be fetched.
replace github.com/pggo/pggo => {{.Replace}}
{{end}}`

const mainTmpl = `// Command {{.Name}} is a pggo extension: PostgreSQL runs its worker.
//
//	pggo run     build it and start a throwaway PostgreSQL with it preloaded
//	pggo test    run its test against a real PostgreSQL
package main

import (
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/spi"
)

func init() {
	// Register the worker's function, then the worker itself at server start
	// (it runs this extension's library: no SetLibrary needed).
	bgworker.RegisterFunction("{{.Name}}_main", workerMain)
	pggo.OnInit(func() error {
		return bgworker.New("{{.Name}} worker").
			SetType("{{.Name}}").
			SetFunction("{{.Name}}_main").
			EnableSPIAccess().
			SetRestartTime(5 * time.Second).
			Load()
	})
}

// workerMain records a tick every second until PostgreSQL stops it.
func workerMain(arg pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP | bgworker.SIGTERM)
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	// One worker creates the table. Several starting together would race
	// on it: take pg_advisory_xact_lock first (see pggo's README).
	err := bgworker.Transaction(func() error {
		_, err := spi.Exec("CREATE TABLE IF NOT EXISTS {{.Name}}_ticks(at timestamptz NOT NULL DEFAULT now(), note text)")
		return err
	})
	if err != nil {
		return err
	}
	bgworker.Log("{{.Name}} worker started")
	for bgworker.WaitLatch(time.Second) {
		err := bgworker.Transaction(func() error {
			_, err := spi.Exec("INSERT INTO {{.Name}}_ticks(note) VALUES ($1)", "tick from Go")
			return err
		})
		if err != nil {
			return err // logged as ERROR; restarted after 5 s
		}
	}
	return nil
}

func main() {}
`

const testTmpl = `package main

import (
	"context"
	"testing"
	"time"

	"github.com/pggo/pggo/pgtest"
)

// TestWorkerTicks builds this extension, preloads it into a throwaway
// PostgreSQL, installs it with CREATE EXTENSION (from the files pggo build
// wrote, in the cluster's private installation: nothing is written into
// the system's PostgreSQL) and waits for the worker's first tick.
func TestWorkerTicks(t *testing.T) {
	ext := pgtest.Build(t, ".")
	c := pgtest.Start(t, pgtest.Options{Preload: []string{ext.Loader}, Extensions: []*pgtest.Extension{ext}})
	conn := c.Connect(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE EXTENSION {{.Name}}"); err != nil {
		t.Fatal(err)
	}
	c.WaitForWorker(t, conn, "{{.Name}}", 30*time.Second)
	pgtest.Eventually(t, 30*time.Second, "a tick", func() (bool, error) {
		var n int
		err := conn.QueryRow(ctx, "SELECT count(*) FROM {{.Name}}_ticks").Scan(&n)
		return n > 0, err
	})
	// A function the extension created: it wakes the worker.
	var woken int
	if err := conn.QueryRow(ctx, "SELECT pggo_wake_type('{{.Name}}')").Scan(&woken); err != nil || woken != 1 {
		t.Fatalf("pggo_wake_type('{{.Name}}') = %d, %v", woken, err)
	}
	c.AssertNoCrashRecovery(t)
}
`
