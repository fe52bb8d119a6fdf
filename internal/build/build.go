// Package build turns a pggo extension (a Go main package) into the two
// files PostgreSQL loads:
//
//   - NAME.so, the loader: plain C compiled with the server's headers. It is
//     what goes into shared_preload_libraries. It exports one C function per
//     name given to bgworker.RegisterFunction (PostgreSQL finds a worker's
//     entry point by symbol name), and never starts Go in the postmaster.
//   - NAME-go.so, the Go code built with -buildmode=c-shared, opened by the
//     loader inside forked processes only. It is linked with async
//     preemption off: preemption signals are SIGURG, which PostgreSQL 15's
//     latches need to themselves.
package build

import (
	"bytes"
	"context"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/pggo/pggo/internal/pg"
)

// BgworkerPath is the import path whose RegisterFunction calls are exported.
const BgworkerPath = "github.com/pggo/pggo/bgworker"

// Options control a build.
type Options struct {
	Dir      string    // the extension's main package ("" = current directory)
	Out      string    // output directory ("" = DIR/build)
	Name     string    // library name ("" = base name of DIR)
	PGConfig string    // pg_config to ask for headers and flags ("" = pg_config on PATH)
	Log      io.Writer // progress (nil = quiet)
}

// Result names the built files by absolute path.
type Result struct {
	GoLibrary string // opened by the loader inside workers
	Loader    string // the file to put in shared_preload_libraries
	Functions []string
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// Build builds the extension in o.Dir.
func Build(ctx context.Context, o Options) (*Result, error) {
	dir, err := filepath.Abs(defaultString(o.Dir, "."))
	if err != nil {
		return nil, err
	}
	name := defaultString(o.Name, filepath.Base(dir))
	if !validName.MatchString(name) {
		return nil, fmt.Errorf("pggo build: library name %q: use letters, digits, '_', '-' and '.' (set one with -name)", name)
	}
	out, err := filepath.Abs(defaultString(o.Out, filepath.Join(dir, "build")))
	if err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}

	funcs, err := FindFunctions(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	res := &Result{
		GoLibrary: filepath.Join(out, name+"-go.so"),
		Loader:    filepath.Join(out, name+".so"),
		Functions: funcs,
	}

	logf("pggo build: Go library %s", res.GoLibrary)
	if err := buildGo(ctx, dir, res.GoLibrary); err != nil {
		return nil, err
	}
	logf("pggo build: loader %s (functions: %s)", res.Loader, strings.Join(funcs, ", "))
	if err := buildLoader(ctx, o.PGConfig, filepath.Base(res.GoLibrary), funcs, res.Loader); err != nil {
		return nil, err
	}
	// Both files must be readable by the server's OS user.
	for _, f := range []string{res.GoLibrary, res.Loader} {
		if err := os.Chmod(f, 0o755); err != nil {
			return nil, err
		}
	}
	return res, nil
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// FindFunctions lists the string literals passed to bgworker.RegisterFunction
// in the main package in dir. Each becomes a C symbol of the loader, so the
// name must be a literal and a C identifier.
func FindFunctions(dir string) ([]string, error) {
	pkg, err := build.ImportDir(dir, 0)
	if err != nil {
		return nil, fmt.Errorf("pggo build: %s: %w", dir, err)
	}
	if pkg.Name != "main" {
		return nil, fmt.Errorf("pggo build: %s is package %s; an extension is a main package", dir, pkg.Name)
	}
	fset := token.NewFileSet()
	seen := map[string]bool{}
	var names []string
	for _, f := range append(append([]string{}, pkg.GoFiles...), pkg.CgoFiles...) {
		file, err := parser.ParseFile(fset, filepath.Join(dir, f), nil, 0)
		if err != nil {
			return nil, err
		}
		alias := ""
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == BgworkerPath {
				alias = "bgworker"
				if imp.Name != nil {
					alias = imp.Name.Name
				}
			}
		}
		if alias == "" {
			continue
		}
		var inspectErr error
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || inspectErr != nil {
				return inspectErr == nil
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "RegisterFunction" {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); !ok || id.Name != alias || len(call.Args) == 0 {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				inspectErr = fmt.Errorf("pggo build: %s: the name given to RegisterFunction must be a string literal, so it can be exported as a C function",
					fset.Position(call.Pos()))
				return false
			}
			s, _ := strconv.Unquote(lit.Value)
			if !isCIdentifier(s) {
				inspectErr = fmt.Errorf("pggo build: %s: RegisterFunction(%q): not a C identifier (letters, digits, '_')",
					fset.Position(call.Pos()), s)
				return false
			}
			if strings.HasPrefix(s, "pggo_") || strings.HasPrefix(s, "_PG_") || strings.HasPrefix(s, "Pg_") {
				inspectErr = fmt.Errorf("pggo build: %s: RegisterFunction(%q): names starting with pggo_, _PG_ or Pg_ are reserved",
					fset.Position(call.Pos()), s)
				return false
			}
			if !seen[s] {
				seen[s] = true
				names = append(names, s)
			}
			return true
		})
		if inspectErr != nil {
			return nil, inspectErr
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("pggo build: %s registers no worker function: call bgworker.RegisterFunction(\"name\", fn) in an init function", dir)
	}
	sort.Strings(names)
	return names, nil
}

func isCIdentifier(s string) bool {
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

func run(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var outb bytes.Buffer
	cmd.Stdout = &outb
	cmd.Stderr = &outb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pggo build: %s %s: %v\n%s", name, strings.Join(args, " "), err, outb.String())
	}
	return nil
}

func buildGo(ctx context.Context, dir, out string) error {
	err := run(ctx, dir, []string{"CGO_ENABLED=1"}, "go", "build", "-buildmode=c-shared",
		// Async preemption signals are SIGURG; with it on, Go's threads take
		// the SIGURG that PostgreSQL's SetLatch sends and wake-ups are lost.
		"-ldflags=-X=runtime.godebugDefault=asyncpreemptoff=1",
		"-o", out, ".")
	os.Remove(strings.TrimSuffix(out, ".so") + ".h")
	return err
}

// PGConfig asks pg_config for one setting.
func PGConfig(ctx context.Context, pgConfig, flag string) (string, error) {
	pgConfig = defaultString(pgConfig, "pg_config")
	out, err := exec.CommandContext(ctx, pgConfig, flag).Output()
	if err != nil {
		return "", fmt.Errorf("pggo build: %s %s: %v (are PostgreSQL's server headers installed? On Debian: postgresql-server-dev-15)", pgConfig, flag, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func buildLoader(ctx context.Context, pgConfig, goLib string, funcs []string, out string) error {
	inc, err := PGConfig(ctx, pgConfig, "--includedir-server")
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(inc, "postgres.h")); err != nil {
		return fmt.Errorf("pggo build: %s/postgres.h is missing: install PostgreSQL's server headers (Debian: postgresql-server-dev-15)", inc)
	}
	var flags []string
	for _, f := range []string{"--cppflags", "--cflags", "--cflags_sl"} {
		v, err := PGConfig(ctx, pgConfig, f)
		if err != nil {
			return err
		}
		flags = append(flags, strings.Fields(v)...)
	}

	tmp, err := os.MkdirTemp("", "pggo-loader-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	files := map[string]string{
		"pggo_loader.c": pg.LoaderSource,
		"pggo_abi.h":    pg.ABIHeader,
		"trampolines.c": Trampolines(goLib, funcs),
	}
	for n, content := range files {
		if err := os.WriteFile(filepath.Join(tmp, n), []byte(content), 0o644); err != nil {
			return err
		}
	}
	args := append(flags,
		// PostgreSQL 15 leaves PGDLLEXPORT empty; make exports explicit.
		`-DPGDLLEXPORT=__attribute__((visibility("default")))`,
		"-I", tmp, "-I", inc, "-shared", "-o", out, "pggo_loader.c", "trampolines.c")
	return run(ctx, tmp, nil, "cc", args...)
}

// Trampolines is the generated C file: one exported function per worker
// function name, each handing over to the loader, and the Go library's name.
func Trampolines(goLib string, funcs []string) string {
	var b strings.Builder
	b.WriteString("/* Generated by `pggo build`. Do not edit. */\n")
	b.WriteString("#include \"postgres.h\"\n\n")
	b.WriteString("#define PGGO_HIDDEN __attribute__((visibility(\"hidden\")))\n")
	b.WriteString("extern PGGO_HIDDEN void pggo_loader_run_worker(const char *function, Datum arg);\n")
	fmt.Fprintf(&b, "PGGO_HIDDEN const char pggo_go_library_name[] = %s;\n\n", strconv.Quote(goLib))
	for _, f := range funcs {
		fmt.Fprintf(&b, "extern PGDLLEXPORT void %s(Datum arg);\n", f)
		fmt.Fprintf(&b, "void\n%s(Datum arg)\n{\n\tpggo_loader_run_worker(%q, arg);\n}\n\n", f, f)
	}
	return b.String()
}
