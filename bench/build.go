package bench

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"github.com/pggo/pggo/pgtest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pggo/pggo/internal/build"
)

// CSource is the C worker, bench/cbench/cbench.c.
//
//go:embed cbench/cbench.c
var CSource string

// libraries are the two preloaded libraries.
type libraries struct {
	goLoader string // gobench.so, the pggo loader (its Go library is next to it)
	cLib     string // cbench.so
	// background is examples/background, installed with CREATE EXTENSION
	// (not preloaded, as pg_background is used).
	background *pgtest.Extension
}

// buildAll builds bench/gobench with pggo's builder and bench/cbench with cc,
// into one temporary directory readable by the server's OS user.
func buildAll(t testing.TB, cfg Config) libraries {
	t.Helper()
	ctx := context.Background()
	// Short: bgw_library_name holds at most 95 bytes of path.
	out, err := os.MkdirTemp("/tmp", "pggo-bench-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	if err := os.Chmod(out, 0o755); err != nil {
		t.Fatal(err)
	}

	cfg.logf("building bench/gobench (pggo build) and bench/cbench (cc) in %s", out)
	res, err := build.Build(ctx, build.Options{Dir: filepath.Join(sourceDir(), "gobench"), Out: out, Name: "gobench"})
	if err != nil {
		t.Fatal(err)
	}
	cLib, err := BuildC(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	bg := pgtest.Build(t, filepath.Join(sourceDir(), "..", "examples", "background"))
	return libraries{goLoader: res.Loader, cLib: cLib, background: bg}
}

// BuildC compiles the C worker into dir/cbench.so with the flags PostgreSQL
// builds extensions with:
//
//	cc $(pg_config --cppflags) $(pg_config --cflags) $(pg_config --cflags_sl) \
//	   -I$(pg_config --includedir-server) -shared -o cbench.so cbench.c
//
// and returns the library's absolute path.
func BuildC(ctx context.Context, dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	src := filepath.Join(dir, "cbench.c")
	if err := os.WriteFile(src, []byte(CSource), 0o644); err != nil {
		return "", err
	}
	var args []string
	for _, f := range []string{"--cppflags", "--cflags", "--cflags_sl"} {
		v, err := build.PGConfig(ctx, "", f)
		if err != nil {
			return "", err
		}
		args = append(args, strings.Fields(v)...)
	}
	inc, err := build.PGConfig(ctx, "", "--includedir-server")
	if err != nil {
		return "", err
	}
	lib := filepath.Join(dir, "cbench.so")
	args = append(args, "-I"+inc, "-shared", "-o", lib, src)
	cmd := exec.CommandContext(ctx, "cc", args...)
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("bench: cc %s: %v\n%s", strings.Join(args, " "), err, outb.String())
	}
	if outb.Len() > 0 {
		return "", fmt.Errorf("bench: cbench.c compiles with warnings:\n%s", outb.String())
	}
	if err := os.Chmod(lib, 0o755); err != nil {
		return "", err
	}
	return lib, nil
}

// gitCommit is the checked-out commit, read without touching git's state.
func gitCommit() string {
	cmd := exec.Command("git", "rev-parse", "--short=12", "HEAD")
	cmd.Dir = sourceDir()
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
