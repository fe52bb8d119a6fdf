package pgtest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/internal/build"
)

// Extension is a pggo extension built for a test.
type Extension struct {
	Loader    string // put it in Options.Preload
	GoLibrary string
	SQLFile   string // CREATE FUNCTION statements of its fmgr functions
	// ControlFile and Scripts are its CREATE EXTENSION files (NAME.control,
	// NAME--VERSION.sql, upgrade scripts): put the Extension in
	// Options.Extensions for CREATE EXTENSION to find them.
	ControlFile string
	Scripts     []string
}

// Build builds the pggo extension (a Go main package) in dir with `pggo
// build`, into a temporary directory the server's OS user can read, for the
// PostgreSQL that PGGO_PG_CONFIG names (pg_config on PATH by default), the
// same one Start runs.
func Build(t testing.TB, dir string) *Extension {
	t.Helper()
	out, err := os.MkdirTemp("", "pgtest-ext-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	os.Chmod(out, 0o755) // the server runs as another OS user when the test is root
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := build.Build(context.Background(), build.Options{Dir: abs, Out: out})
	if err != nil {
		t.Fatalf("pgtest: building %s: %v", dir, err)
	}
	return ExtensionOf(res)
}

// ExtensionOf is the Extension of a finished build (for `pggo run`).
func ExtensionOf(res *build.Result) *Extension {
	return &Extension{Loader: res.Loader, GoLibrary: res.GoLibrary, SQLFile: res.SQLFile, ControlFile: res.ControlFile, Scripts: res.Scripts}
}

// InstallSQL runs the extension's generated SQL (its SQL functions) on conn.
func (e *Extension) InstallSQL(t testing.TB, conn *pgx.Conn) {
	t.Helper()
	script, err := os.ReadFile(e.SQLFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), string(script)); err != nil {
		t.Fatalf("pgtest: %s: %v", e.SQLFile, err)
	}
}

// WaitForWorker waits until a process of the given backend_type (a
// worker's bgw_type) shows in pg_stat_activity and returns its pid.
func (c *Cluster) WaitForWorker(t testing.TB, conn *pgx.Conn, backendType string, timeout time.Duration) int {
	t.Helper()
	var pid int
	Eventually(t, timeout, "a "+backendType+" worker in pg_stat_activity", func() (bool, error) {
		err := conn.QueryRow(context.Background(),
			"SELECT pid FROM pg_stat_activity WHERE backend_type = $1 ORDER BY backend_start LIMIT 1", backendType).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return err == nil, err
	})
	return pid
}

// Launch starts a cluster outside a test (for `pggo run`, benchmarks, demos).
// Close stops it and removes its files. On error the returned Cluster, if
// not nil, still holds the log.
func Launch(opts Options) (*Cluster, error) {
	c := &Cluster{opts: opts}
	if err := c.start(); err != nil {
		c.Close()
		return c, err
	}
	return c, nil
}

// Close stops a cluster started with Launch (pg_ctl stop -m fast) and
// removes its files, and the template if no other cluster remains.
func (c *Cluster) Close() error {
	err := c.Stop("fast")
	if err == nil {
		c.reclaimShm()
	}
	c.removeFiles()
	return err
}
