package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestExtensionsPrivateInstall: a SQL-only extension given in
// Options.Extensions can be created, and the private installation is gone
// once the cluster is.
func TestExtensionsPrivateInstall(t *testing.T) {
	// Not t.TempDir: its parent is private, and the server runs as another
	// OS user when the test is root.
	dir, err := os.MkdirTemp("", "pgtest-ext-files-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	files := map[string]string{
		"pgtest_sqlonly.control":     "default_version = '1.0'\nrelocatable = true\n",
		"pgtest_sqlonly--1.0.sql":    "CREATE FUNCTION pgtest_sqlonly_answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n",
		"pgtest_sqlonly--1.0--2.sql": "CREATE FUNCTION pgtest_sqlonly_v2() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ext := &Extension{ControlFile: filepath.Join(dir, "pgtest_sqlonly.control"),
		Scripts: []string{filepath.Join(dir, "pgtest_sqlonly--1.0.sql"), filepath.Join(dir, "pgtest_sqlonly--1.0--2.sql")}}
	c, err := StartE(t, Options{Extensions: []*Extension{ext}})
	if err != nil {
		t.Fatal(err)
	}
	conn := c.Connect(t)
	ctx := context.Background()
	var n, m int
	for _, sql := range []string{"CREATE EXTENSION pgtest_sqlonly", "ALTER EXTENSION pgtest_sqlonly UPDATE TO '2'"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := conn.QueryRow(ctx, "SELECT pgtest_sqlonly_answer(), pgtest_sqlonly_v2()").Scan(&n, &m); err != nil || n != 42 || m != 2 {
		t.Fatalf("got %d %d, %v", n, m, err)
	}
	// The extensions of the system's installation are still there.
	if _, err := conn.Exec(ctx, "CREATE EXTENSION plpgsql_check_does_not_exist"); err == nil {
		t.Fatal("an unknown extension was created")
	}
	var avail int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_available_extensions WHERE name = 'plpgsql'").Scan(&avail); err != nil || avail != 1 {
		t.Fatalf("plpgsql available: %d, %v", avail, err)
	}
	if fi, err := os.Lstat(filepath.Join(c.BinDir(), "postgres")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Fatalf("the private postgres must be a file, not a symlink (%v)", err)
	}
	install := c.install
	conn.Close(ctx)
	if err := c.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	c.removeFiles()
	if _, err := os.Stat(install); !os.IsNotExist(err) {
		t.Fatalf("the private installation %s is still there (%v)", install, err)
	}
}
