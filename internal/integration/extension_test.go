package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pggo/pggo/internal/build"
	"github.com/pggo/pggo/pgtest"
)

// TestCreateExtension installs testext with CREATE EXTENSION in a cluster
// running from a private installation (pgtest Options.Extensions), checks
// the generated script's rule (functions revoked from PUBLIC), upgrades it
// with the copied sql/testext--1.0--1.1.sql and drops it, and checks that
// nothing was written into the system's extension directory.
func TestCreateExtension(t *testing.T) {
	lib := testext(t)
	if lib.Version != build.DefaultVersion || len(lib.Scripts) != 2 || filepath.Base(lib.Scripts[1]) != "testext--1.0--1.1.sql" {
		t.Fatalf("build: version %q, scripts %v", lib.Version, lib.Scripts)
	}
	c := pgtest.Start(t, pgtest.Options{Preload: []string{lib.Loader}, Extensions: []*pgtest.Extension{pgtest.ExtensionOf(lib)}})
	conn := c.Connect(t)
	ctx := context.Background()
	exec1 := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var n int
	var version string
	exec1("CREATE EXTENSION testext")
	if err := conn.QueryRow(ctx, "SELECT testext_add(2, 3), (SELECT extversion FROM pg_extension WHERE extname = 'testext')").Scan(&n, &version); err != nil || n != 5 || version != "1.0" {
		t.Fatalf("testext_add(2, 3) = %d, version %q, %v", n, version, err)
	}
	// The functions belong to the extension and PUBLIC may not call them.
	exec1("CREATE ROLE someone")
	var members, public int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE has_function_privilege('someone', p.oid, 'EXECUTE'))
		FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
		WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'testext') AND d.deptype = 'e'`).Scan(&members, &public); err != nil {
		t.Fatal(err)
	}
	if members < len(lib.Exports.SQL)+2 || public != 0 {
		t.Fatalf("extension functions: %d (want %d fmgr + 2 pggo_wake), %d executable by PUBLIC", members, len(lib.Exports.SQL), public)
	}
	exec1("ALTER EXTENSION testext UPDATE TO '1.1'")
	if err := conn.QueryRow(ctx, "SELECT testext_add_v11(20, 22), (SELECT extversion FROM pg_extension WHERE extname = 'testext')").Scan(&n, &version); err != nil || n != 42 || version != "1.1" {
		t.Fatalf("after the update: testext_add_v11(20, 22) = %d, version %q, %v", n, version, err)
	}
	exec1("DROP EXTENSION testext")
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'testext%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("after DROP EXTENSION: %d testext functions, %v", n, err)
	}
	// The system's PostgreSQL is untouched.
	share, err := exec.Command(filepath.Join(c.BinDir(), "pg_config"), "--sharedir").Output()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSpace(string(share)), "extension", "testext.control")); !os.IsNotExist(err) {
		t.Fatalf("testext.control in the system's extension directory (%v)", err)
	}
	c.AssertNoCrashRecovery(t)
}
