package integration

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pggo/pggo/pgtest"
)

// TestDeclaredSettings: settings declared with guc.Define* are real GUCs in
// every process: postgresql.conf values at start (a postmaster one too),
// SHOW, pg_settings with the bounds, ALTER SYSTEM checked against them and
// applied by a reload, SET refused by context, a reserved prefix, and Go
// reading them in a backend.
func TestDeclaredSettings(t *testing.T) {
	c, conn := startDynamic(t, map[string]string{"testext.mode": "safe", "testext.batch_size": "20", "testext.typo": "1"})
	ctx := context.Background()
	show := func(name string) string {
		t.Helper()
		var v string
		if err := conn.QueryRow(ctx, "SHOW "+name).Scan(&v); err != nil {
			t.Fatalf("SHOW %s: %v", name, err)
		}
		return v
	}
	if got := show("testext.mode") + " " + show("testext.batch_size") + " " + show("testext.enabled") + " " + show("testext.label"); got != "safe 20 on none" {
		t.Fatalf("SHOW: %q, want postgresql.conf's values and the defaults", got)
	}
	// The misspelt name was reported at start: the prefix is reserved.
	c.WaitLog(t, regexp.MustCompile(`invalid configuration parameter name "testext.typo", removing it`), 10*time.Second)

	var context_, vartype, minVal, maxVal, boot, desc string
	if err := conn.QueryRow(ctx, `SELECT context, vartype, min_val, max_val, boot_val, short_desc FROM pg_settings WHERE name = 'testext.batch_size'`).
		Scan(&context_, &vartype, &minVal, &maxVal, &boot, &desc); err != nil {
		t.Fatal(err)
	}
	if context_ != "sighup" || vartype != "integer" || minVal != "1" || maxVal != "1000" || boot != "10" || desc != "Rows per batch (a test setting)." {
		t.Fatalf("pg_settings: %s %s [%s, %s] boot %s %q", context_, vartype, minVal, maxVal, boot, desc)
	}
	var enumvals []string
	if err := conn.QueryRow(ctx, `SELECT context, enumvals FROM pg_settings WHERE name = 'testext.mode'`).Scan(&context_, &enumvals); err != nil {
		t.Fatal(err)
	}
	if context_ != "postmaster" || strings.Join(enumvals, ",") != "fast,safe" {
		t.Fatalf("pg_settings testext.mode: %s %v", context_, enumvals)
	}

	for sql, want := range map[string]string{
		"ALTER SYSTEM SET testext.batch_size = 5000": "5000 is outside the valid range",
		"ALTER SYSTEM SET testext.mode = 'slow'":     `invalid value for parameter "testext.mode"`,
		"SET testext.mode = 'fast'":                  "cannot be changed without restarting",
		"SET testext.batch_size = 5":                 "cannot be changed now",
		"SET testext.nosuch = 1":                     `invalid configuration parameter name "testext.nosuch"`, // DETAIL: a reserved prefix
	} {
		if _, err := conn.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", sql, err, want)
		}
	}
	if _, err := conn.Exec(ctx, "SET testext.enabled = off"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET testext.batch_size = 50"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 10*time.Second, "the reloaded value", func() (bool, error) {
		var s string
		err := conn.QueryRow(ctx, "SELECT testext_settings()").Scan(&s)
		return s == "batch_size=50 enabled=false label=none mode=safe", err
	})
	c.AssertNoCrashRecovery(t)
}

// TestSettingReachesWorker: a worker reads a declared sighup setting again
// after ALTER SYSTEM and a reload, in its loop.
func TestSettingReachesWorker(t *testing.T) {
	c := startWith(t, "PGGO_TEST_WORKERS=setting_watch")
	conn := c.Connect(t)
	result(t, conn, "setting_watch", "batch_size=10")
	for _, sql := range []string{"ALTER SYSTEM SET testext.batch_size = 77", "SELECT pg_reload_conf()"} {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	result(t, conn, "setting_watch", "batch_size=77")
	c.AssertNoCrashRecovery(t)
}

// TestBadSettingDeclaration: a bad declaration stops the server's start
// with the setting named.
func TestBadSettingDeclaration(t *testing.T) {
	lib := testext(t)
	for kind, want := range map[string]string{
		"bounds": `guc: setting "testext.bad_bounds": the default 5 is not within \[10, 1\]`,
		"name":   `guc: setting "nodot": the name must be PREFIX.NAME`,
		"enum":   `guc: setting "testext.bad_enum": the default is not one of the options`,
	} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			c, err := pgtest.StartE(t, pgtest.Options{Preload: []string{lib.Loader}, Env: []string{"PGGO_TEST_BADSETTING=" + kind}})
			if err == nil {
				t.Fatalf("the server started with a bad setting (%s)", kind)
			}
			if !regexp.MustCompile(`FATAL:  pggo: \S+: ` + want).MatchString(c.Log()) {
				t.Fatalf("log does not name the problem (want %q):\n%s", want, c.LogTail(10))
			}
		})
	}
}
