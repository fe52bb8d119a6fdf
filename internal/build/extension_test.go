package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExtensionFiles: the control file and install script follow
// PostgreSQL's conventions and keep the rule that functions are revoked
// from PUBLIC.
func TestExtensionFiles(t *testing.T) {
	ctl := ControlFile("jobs", "1.2")
	for _, want := range []string{"default_version = '1.2'", "module_pathname = '$libdir/jobs'", "relocatable = false", "superuser = true"} {
		if !strings.Contains(ctl, want) {
			t.Errorf("control file lacks %q:\n%s", want, ctl)
		}
	}
	script := ExtensionScript("jobs", []SQLFunc{{"job_launch", "(n int4) RETURNS int4"}})
	for _, want := range []string{
		`\echo Use "CREATE EXTENSION jobs" to load this file. \quit`,
		"CREATE FUNCTION job_launch(n int4) RETURNS int4\n    AS 'MODULE_PATHNAME', 'job_launch' LANGUAGE C;\nREVOKE ALL ON FUNCTION job_launch FROM PUBLIC;",
		"REVOKE ALL ON FUNCTION pggo_wake FROM PUBLIC;",
		"REVOKE ALL ON FUNCTION pggo_wake_type FROM PUBLIC;",
	} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if strings.Contains(script, "OR REPLACE") {
		t.Errorf("an extension script must not replace existing functions:\n%s", script)
	}
}

// TestVersionsAndUpgradeScripts: versions PostgreSQL would reject fail the
// build; sql/NAME--A--B.sql are found, anything else named NAME--*.sql is
// refused (it would shadow the generated install script).
func TestVersionsAndUpgradeScripts(t *testing.T) {
	for _, v := range []string{"1.0", "2", "1.0-beta"} {
		if err := checkVersion(v); err != nil {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{"", "1--2", "-1", "1-", "a/b", `a\b`, "it's"} {
		if checkVersion(v) == nil {
			t.Errorf("%q accepted", v)
		}
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "sql"), 0o755)
	for _, f := range []string{"jobs--1.0--1.1.sql", "jobs--1.1--2.0.sql", "other--1.0--1.1.sql"} {
		os.WriteFile(filepath.Join(dir, "sql", f), nil, 0o644)
	}
	ups, err := upgradeScripts(dir, "jobs")
	if err != nil || len(ups) != 2 || filepath.Base(ups[0]) != "jobs--1.0--1.1.sql" || filepath.Base(ups[1]) != "jobs--1.1--2.0.sql" {
		t.Fatalf("upgradeScripts: %v, %v", ups, err)
	}
	os.WriteFile(filepath.Join(dir, "sql", "jobs--1.0.sql"), nil, 0o644)
	if _, err := upgradeScripts(dir, "jobs"); err == nil || !strings.Contains(err.Error(), "is generated") {
		t.Fatalf("an install script in sql/: %v", err)
	}
}

// TestVersionDirective: //pggo:version in any file of the package sets the
// version; two different ones, or a bad one, fail the build.
func TestVersionDirective(t *testing.T) {
	find := func(files map[string]string) (string, error) {
		ex, err := FindExports(writePackage(t, files))
		if err != nil {
			return "", err
		}
		return ex.Version, nil
	}
	if v, err := find(map[string]string{"main.go": registrations, "v.go": "package main\n\n//pggo:version 1.1\n"}); err != nil || v != "1.1" {
		t.Fatalf("got %q, %v", v, err)
	}
	if v, err := find(map[string]string{"main.go": registrations, "v.go": "package main\n\n//pggo:versions are not this\n"}); err != nil || v != "" {
		t.Fatalf("another comment: got %q, %v", v, err)
	}
	if _, err := find(map[string]string{"main.go": registrations, "v.go": "package main\n\n//pggo:version 1.1\n", "w.go": "package main\n\n//pggo:version 1.2\n"}); err == nil || !strings.Contains(err.Error(), "says") {
		t.Fatalf("two versions: %v", err)
	}
	if _, err := find(map[string]string{"main.go": registrations, "v.go": "package main\n\n//pggo:version 1--2\n"}); err == nil || !strings.Contains(err.Error(), "v.go:3") {
		t.Fatalf("a bad version: %v", err)
	}
}
