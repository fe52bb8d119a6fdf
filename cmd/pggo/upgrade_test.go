package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// upgSource is a small extension reporting VERSION from a static worker
// (its log line when it starts) and from a SQL function.
const upgSource = `package main

import (
	"time"

	"github.com/pggo/pggo"
	"github.com/pggo/pggo/bgworker"
	"github.com/pggo/pggo/fmgr"
)

const version = "VERSION"

func init() {
	bgworker.RegisterFunction("upg_main", workerMain)
	fmgr.Register("upg_version", "() RETURNS text", func(*fmgr.Args) (any, error) { return version, nil })
	pggo.OnInit(func() error {
		return bgworker.New("upg worker").SetType("upg").SetFunction("upg_main").
			EnableSPIAccess().SetRestartTime(time.Second).Load()
	})
}

// workerMain keeps SIGTERM as PostgreSQL's die(): pg_terminate_backend ends
// it with exit code 1, and the postmaster restarts it after a second.
func workerMain(pggo.Datum) error {
	bgworker.AttachSignalHandlers(bgworker.SIGHUP)
	if err := bgworker.ConnectWorkerToSPI("postgres", ""); err != nil {
		return err
	}
	bgworker.Log("upg worker " + version + " started")
	for bgworker.WaitLatch(time.Minute) {
	}
	return nil
}

func main() {}
`

// TestUpgradeInPlace follows the README's "Deploying and upgrading": v1 of
// an extension installed with pggo install and running (a static worker,
// and a session that loaded its Go library), then v2 installed over it with
// pggo install. The old session keeps running v1 (its process maps the old
// file, which the rename left intact), a new session runs v2, the static
// worker comes back as v2 once terminated, and the server never goes
// through crash recovery.
func TestUpgradeInPlace(t *testing.T) {
	bin := pggoBinary(t)
	work := t.TempDir()
	os.Chmod(work, 0o755)
	for d := filepath.Dir(work); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // the server (another OS user) reads the installed files
	}
	run(t, work, bin, "new", "upg")
	src := filepath.Join(work, "upg")
	os.Remove(filepath.Join(src, "main_test.go"))
	dest := filepath.Join(work, "dest")
	lib, err := pgConfigValue("", "--pkglibdir")
	if err != nil {
		t.Fatal(err)
	}
	libdir := filepath.Join(dest, lib)
	install := func(source, version string) string {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(strings.ReplaceAll(source, "VERSION", version)), 0o644); err != nil {
			t.Fatal(err)
		}
		// --destdir stands for the live directories, which a test must
		// not write: the cluster preloads the loader from there.
		return run(t, src, bin, "install", "--destdir", dest)
	}
	inode := func(path string) uint64 {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}

	install(upgSource, "v1")
	goLib := filepath.Join(libdir, "upg-go.so")
	v1Inode := inode(goLib)
	c := pgtest.Start(t, pgtest.Options{Preload: []string{filepath.Join(libdir, "upg.so")}})
	ctx := context.Background()
	c.WaitLog(t, regexp.MustCompile(`upg worker v1 started`), 30*time.Second)
	old := c.Connect(t)
	// The installed NAME.sql names the live directory; here it is dest's.
	script, err := os.ReadFile(filepath.Join(libdir, "upg.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Exec(ctx, strings.ReplaceAll(string(script), "'"+filepath.Join(lib, "upg.so")+"'", "'"+filepath.Join(libdir, "upg.so")+"'")); err != nil {
		t.Fatal(err)
	}
	version := func(conn *pgx.Conn) string {
		t.Helper()
		var v string
		if err := conn.QueryRow(ctx, "SELECT upg_version()").Scan(&v); err != nil {
			t.Fatalf("upg_version(): %v", err)
		}
		return v
	}
	if v := version(old); v != "v1" {
		t.Fatalf("before the upgrade: upg_version() = %q", v)
	}
	var oldPID int
	old.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&oldPID)

	loaderFile := filepath.Join(libdir, "upg.so")
	loaderInode := inode(loaderFile)
	// Only a constant changed: the loader is the same, and left alone.
	if out := install(upgSource, "v2"); !strings.Contains(out, "its loader upg.so is unchanged, so a running server needs no restart") {
		t.Fatalf("pggo install should say the loader is unchanged:\n%s", out)
	}
	if inode(loaderFile) != loaderInode {
		t.Fatalf("pggo install replaced the unchanged loader %s", loaderFile)
	}
	// Replaced by rename: a new file; the old one lives on, unlinked, in
	// the processes that map it.
	if inode(goLib) == v1Inode {
		t.Fatalf("pggo install rewrote %s in place (same inode): running processes map it", goLib)
	}
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", oldPID))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(maps), goLib+" (deleted)") {
		t.Fatalf("the old session should map the replaced %s (deleted):\n%s", goLib, maps)
	}

	// The old session goes on with the code it loaded.
	if v := version(old); v != "v1" {
		t.Fatalf("the session opened before the upgrade: upg_version() = %q, want v1", v)
	}
	// A new session loads the new file.
	if v := version(c.Connect(t)); v != "v2" {
		t.Fatalf("a new session: upg_version() = %q, want v2", v)
	}
	// The static worker runs v1 until it is restarted.
	var n int
	if err := old.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'upg'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("terminating the static worker: %d, %v", n, err)
	}
	c.WaitLog(t, regexp.MustCompile(`upg worker v2 started`), 30*time.Second)
	if v := version(old); v != "v1" {
		t.Fatalf("the old session after the worker's restart: upg_version() = %q, want v1", v)
	}
	c.AssertNoCrashRecovery(t)

	// A new SQL function needs a new entry point in the loader: pggo
	// install says a restart is needed.
	more := strings.Replace(upgSource, "\tpggo.OnInit(", "\tfmgr.Register(\"upg_more\", \"() RETURNS int4\", func(*fmgr.Args) (any, error) { return 1, nil })\n\tpggo.OnInit(", 1)
	if out := install(more, "v3"); !strings.Contains(out, "the loader upg.so changed") || !strings.Contains(out, "restart PostgreSQL to run this build") {
		t.Fatalf("pggo install should say the loader changed:\n%s", out)
	}
}
