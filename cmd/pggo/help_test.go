package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runStatus runs the pggo binary and returns stdout, stderr and the exit status.
func runStatus(t *testing.T, dir, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var xe *exec.ExitError
	switch {
	case err == nil:
		return out.String(), errb.String(), 0
	case errors.As(err, &xe):
		return out.String(), errb.String(), xe.ExitCode()
	}
	t.Fatalf("pggo %v: %v", args, err)
	return "", "", 0
}

// TestHelpConventions: every way of asking for help prints it to stdout and
// exits 0; a bad flag, argument or command prints a usage line to stderr and
// exits 2.
func TestHelpConventions(t *testing.T) {
	bin := pggoBinary(t)
	dir := t.TempDir()
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		out, _, code := runStatus(t, dir, bin, args...)
		if code != 0 || !strings.Contains(out, "usage: pggo COMMAND") {
			t.Errorf("pggo %v: exit %d, stdout %q", args, code, out)
		}
	}
	for _, cmd := range []string{"new", "build", "run", "test", "install", "package", "init"} {
		for _, args := range [][]string{{"help", cmd}, {cmd, "-h"}, {cmd, "--help"}, {cmd, "-help"}} {
			out, errOut, code := runStatus(t, dir, bin, args...)
			if code != 0 || !strings.HasPrefix(out, "usage: pggo "+cmd) || errOut != "" {
				t.Errorf("pggo %v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
			}
		}
		if cmd == "test" {
			continue // unknown flags go to go test (TestTestPassesFlags)
		}
		_, errOut, code := runStatus(t, dir, bin, cmd, "-no-such-flag")
		if code != 2 || !strings.Contains(errOut, "usage: pggo "+cmd) || !strings.Contains(errOut, "-no-such-flag") {
			t.Errorf("pggo %s -no-such-flag: exit %d, stderr %q", cmd, code, errOut)
		}
	}
	for _, args := range [][]string{{}, {"no-such-command"}, {"help", "no-such-command"}, {"build", "a", "b"}, {"new"}} {
		_, errOut, code := runStatus(t, dir, bin, args...)
		if code != 2 || !strings.Contains(errOut, "usage: pggo") {
			t.Errorf("pggo %v: exit %d, stderr %q", args, code, errOut)
		}
	}
}

// TestTestPassesFlags: pggo test DIR hands what follows to go test (-v,
// -run X, -count) and exits with go test's status.

func TestTestPassesFlags(t *testing.T) {
	bin := pggoBinary(t)
	mod := t.TempDir()
	files := map[string]string{
		"go.mod":        "module passflags\n\ngo 1.26\n",
		"x_test.go":     "package passflags\n\nimport \"testing\"\n\nfunc TestChosen(t *testing.T) { t.Log(\"chosen ran\") }\nfunc TestOther(t *testing.T) { t.Log(\"other ran\") }\n",
		"sub/y.go":      "package sub\n",
		"sub/y_test.go": "package sub\n\nimport \"testing\"\n\nfunc TestSub(t *testing.T) { t.Log(\"sub ran\") }\n",
	}
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(mod, name)), 0o755)
		if err := os.WriteFile(filepath.Join(mod, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code := runStatus(t, t.TempDir(), bin, "test", mod, "-v", "-run", "TestChosen", "-count=2")
	if code != 0 || strings.Count(out, "chosen ran") != 2 || strings.Contains(out, "other ran") {
		t.Fatalf("pggo test DIR -v -run TestChosen -count=2: exit %d\n%s%s", code, out, errOut)
	}
	// Flags without a directory, from inside it; a package pattern replaces ./...
	out, errOut, code = runStatus(t, mod, bin, "test", "-v", "-run", "TestSub", "./sub")
	if code != 0 || !strings.Contains(out, "sub ran") || strings.Contains(out, "passflags\t") {
		t.Fatalf("pggo test -v -run TestSub ./sub: exit %d\n%s%s", code, out, errOut)
	}
	// go test (its test binary) reports a flag it does not know; pggo test
	// exits with its status.
	if out, errOut, code = runStatus(t, mod, bin, "test", "-no-such-go-test-flag"); code == 0 || !strings.Contains(out+errOut, "flag provided but not defined: -no-such-go-test-flag") {
		t.Fatalf("pggo test -no-such-go-test-flag: exit %d\n%s%s", code, out, errOut)
	}
}

// TestCommandsDocumented keeps the command list in one accord: every command
// pggo dispatches is in `pggo help`'s list, in main.go's doc comment and in
// the README's command table, and none of those names a command that does
// not exist.
func TestCommandsDocumented(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	mainSrc, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	listed := func(text string, re *regexp.Regexp) map[string]bool {
		m := map[string]bool{}
		for _, s := range re.FindAllStringSubmatch(text, -1) {
			m[s[1]] = true
		}
		return m
	}
	doc, _, _ := strings.Cut(string(mainSrc), "package main")
	sources := map[string]map[string]bool{
		"README command table":  listed(string(readme), regexp.MustCompile("(?m)^\\| `pggo ([a-z]+)")),
		"pggo help":             listed(usage, regexp.MustCompile(`(?m)^  ([a-z]+) `)),
		"main.go's doc comment": listed(doc, regexp.MustCompile(`(?m)^//\tpggo ([a-z]+)`)),
	}
	for where, names := range sources {
		for cmd := range commands {
			if !names[cmd] {
				t.Errorf("%s does not list pggo %s", where, cmd)
			}
		}
		for name := range names {
			if commands[name] == nil {
				t.Errorf("%s lists pggo %s, which is not a command", where, name)
			}
		}
	}
}
