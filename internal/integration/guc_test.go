package integration

import (
	"context"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
	// The worker's reload (inside WaitLatch, a call into C) runs the Go
	// check hook of testguc.even, which rejects the 3: no crash, and the
	// rest of the file is applied.
	appendConf(t, c, "testguc.even = 3\n")
	for _, sql := range []string{"ALTER SYSTEM SET testext.batch_size = 78", "SELECT pg_reload_conf()"} {
		if _, err := conn.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	result(t, conn, "setting_watch", "batch_size=78")
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

// TestSettingUnitsFlagsHooks: a real setting with bounds, a duration and a
// memory size with units, NoShowAll, SuperuserOnly, and check hooks run in
// a backend with Go loaded (also loaded on demand by SET / ALTER SYSTEM in
// a backend that never called Go), a panicking hook being a rejection.
func TestSettingUnitsFlagsHooks(t *testing.T) {
	c, conn := startDynamic(t, nil)
	ctx := context.Background()
	exec := func(conn *pgx.Conn, sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	values := func(conn *pgx.Conn) string {
		t.Helper()
		var s string
		if err := conn.QueryRow(ctx, "SELECT testguc_values()").Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got, want := values(conn), "batch_size=10 mode=fast ratio=0.25 naptime=10s cache=64 hidden=false secret=s3cret even=2 word=ok short=100ms"; got != want {
		t.Fatalf("defaults: %q, want %q", got, want)
	}

	// pg_settings: units and the real's bounds.
	for name, want := range map[string]string{
		"testguc.naptime": "integer s 1 3600 10",
		"testguc.cache":   "integer MB 1 1024 64",
		"testguc.short":   "integer ms 0 60000 100",
		"testguc.ratio":   "real  0 1 0.25",
	} {
		var vartype, unit, minVal, maxVal, boot string
		if err := conn.QueryRow(ctx, `SELECT vartype, coalesce(unit, ''), min_val, max_val, boot_val FROM pg_settings WHERE name = $1`, name).
			Scan(&vartype, &unit, &minVal, &maxVal, &boot); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := strings.Join([]string{vartype, unit, minVal, maxVal, boot}, " "); got != want {
			t.Errorf("pg_settings %s: %q, want %q", name, got, want)
		}
	}

	// Values with units, read by Go in the unit (a duration as one); a real exactly.
	exec(conn, "SET testguc.naptime = '2min'")
	exec(conn, "SET testguc.cache = '1GB'")
	exec(conn, "SET testguc.short = '1.5s'")
	exec(conn, "SET testguc.ratio = 0.123456789")
	if got, want := values(conn), "ratio=0.123456789 naptime=2m0s cache=1024"; !strings.Contains(got, want) || !strings.Contains(got, "short=1.5s") {
		t.Fatalf("after SET: %q, want %q and short=1.5s", got, want)
	}
	var shown string
	if err := conn.QueryRow(ctx, "SHOW testguc.naptime").Scan(&shown); err != nil || shown != "2min" {
		t.Fatalf("SHOW testguc.naptime: %q %v", shown, err)
	}

	// Bounds of the real, through ALTER SYSTEM, and the reload.
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET testguc.ratio = 1.5"); err == nil || !strings.Contains(err.Error(), "1.5 is outside the valid range") {
		t.Fatalf("ALTER SYSTEM out of bounds: %v", err)
	}
	exec(conn, "ALTER SYSTEM SET testguc.ratio = 0.75")
	exec(conn, "SELECT pg_reload_conf()")
	other := c.Connect(t)
	pgtest.Eventually(t, 10*time.Second, "the reloaded ratio", func() (bool, error) {
		var s string
		err := other.QueryRow(ctx, "SELECT testguc_values()").Scan(&s)
		return strings.Contains(s, "ratio=0.75 "), err
	})

	// NoShowAll: not in SHOW ALL, but SHOW and pg_settings have it.
	rows, err := conn.Query(ctx, "SHOW ALL")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rows.Next() {
		var name, setting, desc string
		if err := rows.Scan(&name, &setting, &desc); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	all := strings.Join(names, ",")
	if strings.Contains(all, "testguc.hidden") || !strings.Contains(all, "testguc.naptime") {
		t.Fatalf("SHOW ALL: testguc.hidden listed or testguc.naptime missing: %s", all)
	}
	if err := conn.QueryRow(ctx, "SHOW testguc.hidden").Scan(&shown); err != nil || shown != "off" {
		t.Fatalf("SHOW testguc.hidden: %q %v", shown, err)
	}

	// SuperuserOnly: a plain role can neither read nor (Superuser context) set it.
	exec(conn, "CREATE ROLE plain LOGIN")
	plain := connectAs(t, c, "plain")
	// 15: "must be superuser or have privileges of pg_read_all_settings to
	// examine", 17: "permission denied to examine": the SQLSTATE is one.
	if err := plain.QueryRow(ctx, "SHOW testguc.secret").Scan(&shown); sqlState(err) != "42501" || !strings.Contains(err.Error(), `examine "testguc.secret"`) {
		t.Fatalf("SHOW testguc.secret as a plain role: %q %v", shown, err)
	}
	if _, err := plain.Exec(ctx, "SET testguc.secret = 'x'"); err == nil || !strings.Contains(err.Error(), `permission denied to set parameter "testguc.secret"`) {
		t.Fatalf("SET testguc.secret as a plain role: %v", err)
	}
	if err := conn.QueryRow(ctx, "SHOW testguc.secret").Scan(&shown); err != nil || shown != "s3cret" {
		t.Fatalf("SHOW testguc.secret as superuser: %q %v", shown, err)
	}

	// Check hooks. conn has Go loaded (it called testguc_values); fresh
	// connections have not, and load it for the SET / ALTER SYSTEM.
	rejected := func(conn *pgx.Conn, sql, msg, detail string) {
		t.Helper()
		_, err := conn.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, msg) || !strings.Contains(pe.Detail, detail) {
			t.Fatalf("%s: %v (detail %q), want %q with detail %q", sql, err, func() string {
				if pe != nil {
					return pe.Detail
				}
				return ""
			}(), msg, detail)
		}
	}
	rejected(conn, "SET testguc.even = 3", `invalid value for parameter "testguc.even": 3`, "3 is odd")
	rejected(conn, "SET testguc.short = '20s'", `invalid value for parameter "testguc.short": 20000`, "20s is longer than 10s")
	rejected(conn, "SET testguc.word = 'boom'", `invalid value for parameter "testguc.word": "boom"`, "the check hook panicked: the hook exploded")
	exec(conn, "SET testguc.even = 4")
	exec(conn, "SET testguc.word = 'fine'")
	if got := values(conn); !strings.Contains(got, "even=4 word=fine") {
		t.Fatalf("accepted values: %q", got)
	}
	fresh := c.Connect(t)
	rejected(fresh, "SET testguc.even = 7", `invalid value for parameter "testguc.even": 7`, "7 is odd")
	fresh2 := c.Connect(t)
	rejected(fresh2, "ALTER SYSTEM SET testguc.even = 9", `invalid value for parameter "testguc.even": 9`, "9 is odd")
	exec(fresh2, "SELECT 1") // the session goes on
	// A connection's startup options are applied inside its startup
	// transaction: the new backend loads Go for them.
	cfg, err := pgx.ParseConfig(c.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["testguc.even"] = "11"
	if bad, err := pgx.ConnectConfig(ctx, cfg); err == nil || !strings.Contains(err.Error(), `invalid value for parameter "testguc.even": 11`) {
		if bad != nil {
			bad.Close(ctx)
		}
		t.Fatalf("connecting with testguc.even=11: %v", err)
	}

	// A value written by hand and reloaded: the postmaster (no Go) takes
	// it, so do backends without Go; one with Go rejects it and keeps its
	// value (PostgreSQL logs that only at DEBUG2 in a backend).
	withGo := c.Connect(t)
	if got := values(withGo); !strings.Contains(got, "even=2 ") {
		t.Fatalf("before the reload: %q", got)
	}
	appendConf(t, c, "testguc.even = 3\ntestguc.cache = 128\n")
	exec(conn, "SELECT pg_reload_conf()")
	pgtest.Eventually(t, 10*time.Second, "a new backend sees the reloaded 3", func() (bool, error) {
		var s string
		err := c.Connect(t).QueryRow(ctx, "SHOW testguc.even").Scan(&s)
		return s == "3", err
	})
	exec(withGo, "SELECT 1") // a statement boundary: the reload is done there
	// cache=128 shows that this backend did reload.
	if got := values(withGo); !strings.Contains(got, "even=2 ") || !strings.Contains(got, "cache=128 ") {
		t.Fatalf("a backend with Go after reloading a value its hook rejects: %q, want even=2 and cache=128", got)
	}
	c.AssertNoCrashRecovery(t)
}

// TestSettingCheckAtStart: a start value a check hook rejects makes the
// server refuse to start, naming the setting, the value and the message.
func TestSettingCheckAtStart(t *testing.T) {
	lib := testext(t)
	for name, tc := range map[string]struct{ settings map[string]string }{
		`testguc.even": the start value 3 \(postgresql.conf, the command line or the default\) is rejected by its check hook: 3 is odd`:      {map[string]string{"testguc.even": "3"}},
		`testguc.short": the start value 20000ms \(postgresql.conf, the command line or the default\) is rejected by its check hook: 20s is`: {map[string]string{"testguc.short": "20s"}},
	} {
		t.Run(strings.SplitN(name, `"`, 2)[0], func(t *testing.T) {
			t.Parallel()
			c, err := pgtest.StartE(t, pgtest.Options{Preload: []string{lib.Loader}, Settings: tc.settings})
			if err == nil {
				t.Fatal("the server started with a start value its check hook rejects")
			}
			if !regexp.MustCompile(`FATAL:  pggo: \S+: guc: setting "` + name).MatchString(c.Log()) {
				t.Fatalf("log does not name the problem (want %q):\n%s", name, c.LogTail(10))
			}
		})
	}
}

// TestSettingsNotPreloaded: a library that is not preloaded defines its
// settings in the process that loads it (LOAD, a function call, a dynamic
// worker), with the declared defaults, the file's values, bounds and a
// reserved prefix; a Postmaster setting stays a placeholder. The
// postmaster stays single-threaded.
func TestSettingsNotPreloaded(t *testing.T) {
	lib := testext(t)
	c := pgtest.Start(t, pgtest.Options{Settings: map[string]string{
		"testext.batch_size": "20", "testext.mode": "safe", "testguc.naptime": "2min"}})
	ctx := context.Background()
	conn := c.Connect(t)
	script, err := os.ReadFile(lib.SQLFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, string(script)); err != nil {
		t.Fatalf("%s: %v", lib.SQLFile, err)
	}

	// LOAD in a backend that has only the placeholders.
	loader := c.Connect(t)
	var shown string
	if err := loader.QueryRow(ctx, "SHOW testguc.cache").Scan(&shown); err == nil {
		t.Fatalf("SHOW testguc.cache before LOAD: %q, want unrecognized", shown)
	}
	start := time.Now()
	if _, err := loader.Exec(ctx, "LOAD "+quoteLiteral(lib.Loader)); err != nil {
		t.Fatal(err)
	}
	t.Logf("LOAD (Go loaded, the settings defined): %v", time.Since(start))
	for name, want := range map[string]string{
		"testguc.cache": "64MB", "testguc.naptime": "2min", "testext.batch_size": "20", "testext.mode": "safe", "testguc.ratio": "0.25",
	} {
		if err := loader.QueryRow(ctx, "SHOW "+name).Scan(&shown); err != nil || shown != want {
			t.Errorf("SHOW %s after LOAD: %q %v, want %q", name, shown, err, want)
		}
	}
	for sql, want := range map[string]string{
		"ALTER SYSTEM SET testext.batch_size = 5000": "5000 is outside the valid range",
		"ALTER SYSTEM SET testguc.ratio = 2":         "2 is outside the valid range",
		"SET testguc.nosuch = 1":                     `invalid configuration parameter name "testguc.nosuch"`,
		"SET testguc.even = 5":                       `invalid value for parameter "testguc.even": 5`,
	} {
		if _, err := loader.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s after LOAD: %v, want %q", sql, err, want)
		}
	}

	// A function call in a fresh backend: Go reads them there.
	caller := c.Connect(t)
	want := "batch_size=20 mode=safe ratio=0.25 naptime=2m0s cache=64 hidden=false secret=s3cret even=2 word=ok short=100ms"
	var got string
	if err := caller.QueryRow(ctx, "SELECT testguc_values()").Scan(&got); err != nil || got != want {
		t.Fatalf("testguc_values() without preload: %q %v, want %q", got, err, want)
	}
	// A dynamic worker launched without preload reads them too.
	if _, err := caller.Exec(ctx, "SELECT testext_launch('settings', true, 0)"); err != nil {
		t.Fatal(err)
	}
	pgtest.Eventually(t, 30*time.Second, "the dynamic worker's settings", func() (bool, error) {
		err := caller.QueryRow(ctx, "SELECT value FROM pggo_results WHERE worker = 'pggo_dyn' AND key = 'settings'").Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) || sqlState(err) == "42P01" { // not yet recorded
			return false, nil
		}
		return err == nil, err
	})
	if got != want {
		t.Fatalf("the dynamic worker read %q, want %q", got, want)
	}
	if n := threads(t, c.PostmasterPID()); n != 1 {
		t.Fatalf("the postmaster has %d threads", n)
	}
	c.AssertNoCrashRecovery(t)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
