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
	"errors"
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
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/pggo/pggo/internal/pg"
)

// BgworkerPath is the import path whose RegisterFunction calls are exported.
const BgworkerPath = "github.com/pggo/pggo/bgworker"

// Options control a build.
type Options struct {
	Dir      string    // the extension's main package ("" = current directory)
	Out      string    // output directory ("" = DIR/build)
	Name     string    // library name ("" = base name of DIR)
	PGConfig string    // pg_config to ask for headers and flags ("" = DefaultPGConfig())
	Version  string    // the extension's version for CREATE EXTENSION ("" = the //pggo:version directive, else DefaultVersion)
	Log      io.Writer // progress (nil = quiet)
}

// DefaultVersion is the extension version when Options.Version is empty.
const DefaultVersion = "1.0"

// Result names the built files by absolute path.
type Result struct {
	GoLibrary string // opened by the loader inside workers
	Loader    string // the file to put in shared_preload_libraries
	SQLFile   string // CREATE FUNCTION statements for the fmgr functions
	// ControlFile is NAME.control, for CREATE EXTENSION NAME; Scripts are
	// NAME--VERSION.sql (first) and the upgrade scripts NAME--A--B.sql
	// copied from the package's sql/ directory. They all belong in
	// $(pg_config --sharedir)/extension.
	ControlFile string
	Scripts     []string
	Version     string
	Exports     Exports
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

	ex, err := FindExports(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	// -version, else the source's //pggo:version, else 1.0.
	version := defaultString(o.Version, defaultString(ex.Version, DefaultVersion))
	if err := checkVersion(version); err != nil {
		return nil, err
	}
	upgrades, err := upgradeScripts(dir, name)
	if err != nil {
		return nil, err
	}
	res := &Result{
		GoLibrary:   filepath.Join(out, name+"-go.so"),
		Loader:      filepath.Join(out, name+".so"),
		SQLFile:     filepath.Join(out, name+".sql"),
		ControlFile: filepath.Join(out, name+".control"),
		Scripts:     []string{filepath.Join(out, name+"--"+version+".sql")},
		Version:     version,
		Exports:     *ex,
	}

	logf("pggo build: Go library %s", res.GoLibrary)
	if err := buildGo(ctx, dir, res.GoLibrary); err != nil {
		return nil, err
	}
	logf("pggo build: loader %s (workers: %s; SQL functions: %d)", res.Loader, strings.Join(ex.Workers, ", "), len(ex.SQL))
	if err := buildLoader(ctx, o.PGConfig, filepath.Base(res.GoLibrary), ex, res.Loader); err != nil {
		return nil, err
	}
	if err := os.WriteFile(res.SQLFile, []byte(SQLScript(res.Loader, ex.SQL)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(res.ControlFile, []byte(ControlFile(name, version)), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(res.Scripts[0], []byte(ExtensionScript(name, ex.SQL)), 0o644); err != nil {
		return nil, err
	}
	for _, u := range upgrades {
		dst := filepath.Join(out, filepath.Base(u))
		b, err := os.ReadFile(u)
		if err == nil {
			err = os.WriteFile(dst, b, 0o644)
		}
		if err != nil {
			return nil, err
		}
		res.Scripts = append(res.Scripts, dst)
	}
	logf("pggo build: CREATE EXTENSION files %s, %s", res.ControlFile, strings.Join(res.Scripts, ", "))
	// The files must be readable by the server's OS user.
	for _, f := range append([]string{res.GoLibrary, res.Loader, res.SQLFile, res.ControlFile}, res.Scripts...) {
		if err := os.Chmod(f, 0o755); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// checkVersion applies PostgreSQL's rules for extension version names
// (extension.c, check_valid_version_name), so a bad -version fails the
// build rather than CREATE EXTENSION.
func checkVersion(v string) error {
	if v == "" || strings.Contains(v, "--") || strings.HasPrefix(v, "-") || strings.HasSuffix(v, "-") || strings.ContainsAny(v, "/\\\x00'") {
		return fmt.Errorf("pggo build: extension version %q: it must not be empty, contain \"--\", '/', '\\' or a quote, or begin or end with '-'", v)
	}
	return nil
}

// upgradeScripts lists DIR/sql/NAME--A--B.sql, the scripts ALTER EXTENSION
// NAME UPDATE runs; pggo build copies them next to the install script.
func upgradeScripts(dir, name string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "sql", name+"--*.sql"))
	if err != nil {
		return nil, err
	}
	var ups []string
	for _, f := range files {
		versions := strings.Split(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), name+"--"), ".sql"), "--")
		if len(versions) != 2 || checkVersion(versions[0]) != nil || checkVersion(versions[1]) != nil {
			// NAME--V.sql would shadow the generated install script.
			return nil, fmt.Errorf("pggo build: %s: want an upgrade script named %s--FROM--TO.sql (the install script %s--VERSION.sql is generated)", f, name, name)
		}
		ups = append(ups, f)
	}
	return ups, nil
}

// ControlFile is NAME.control. module_pathname is $libdir/NAME: the
// loader as installed (pggo install) or as a test cluster's private
// installation lays it out (pgtest Options.Extensions). Not relocatable, so
// PostgreSQL substitutes no @extschema@ and the functions stay where
// CREATE EXTENSION (or its SCHEMA clause) put them; superuser, since the
// functions are C.
func ControlFile(name, version string) string {
	return fmt.Sprintf(`# %[1]s extension: generated by pggo build
comment = '%[1]s: a pggo extension (Go in PostgreSQL)'
default_version = '%[2]s'
module_pathname = '$libdir/%[1]s'
relocatable = false
superuser = true
trusted = false
`, name, version)
}

// ExtensionScript is NAME--VERSION.sql: SQLScript's functions, created
// from MODULE_PATHNAME (which PostgreSQL replaces with the control file's
// module_pathname), with the same rule: each is revoked from PUBLIC.
// Plain CREATE FUNCTION, not OR REPLACE: an extension must not silently
// take over a function that already exists.
func ExtensionScript(name string, funcs []SQLFunc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- Generated by `pggo build`: CREATE EXTENSION %s runs it.\n", name)
	fmt.Fprintf(&b, "\\echo Use \"CREATE EXTENSION %s\" to load this file. \\quit\n", name)
	b.WriteString("-- Every function is revoked from PUBLIC: GRANT EXECUTE to the roles that may call it.\n")
	for _, f := range append(append([]SQLFunc(nil), funcs...), wakeFuncs...) {
		fmt.Fprintf(&b, "CREATE FUNCTION %s%s\n    AS 'MODULE_PATHNAME', '%s' LANGUAGE C;\n", f.Name, f.Signature, f.Name)
		fmt.Fprintf(&b, "REVOKE ALL ON FUNCTION %s FROM PUBLIC;\n", f.Name)
	}
	return b.String()
}

// wakeFuncs are the plain C functions every loader has; see the README's
// "Waking a worker from SQL".
var wakeFuncs = []SQLFunc{{"pggo_wake", "(pid int4) RETURNS bool STRICT"}, {"pggo_wake_type", "(worker_type text) RETURNS int4 STRICT"}}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// SQLFunc is a Go function registered with fmgr.Register.
type SQLFunc struct {
	Name      string
	Signature string // what follows the name in CREATE FUNCTION
}

// Exports is what the extension's main package registers.
type Exports struct {
	Workers []string  // bgworker.RegisterFunction names
	SQL     []SQLFunc // fmgr.Register functions
	Version string    // the //pggo:version directive's, if any
}

// VersionDirective, followed by a version, sets the extension's version
// for CREATE EXTENSION in its Go source (pggo build -version overrides it):
//
//	//pggo:version 1.1
//
// A directive, not a constant, so that the version is read without
// compiling or running anything, like the other names pggo build finds.
const VersionDirective = "//pggo:version"

// findVersion reads the //pggo:version directive of the package's files:
// at most one version, whichever file it is in.
func findVersion(fset *token.FileSet, files []*ast.File, ex *Exports) error {
	var where token.Position
	for _, f := range files {
		for _, cg := range f.Comments {
			for _, c := range cg.List {
				rest, ok := strings.CutPrefix(c.Text, VersionDirective)
				if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
					continue
				}
				v := strings.TrimSpace(rest)
				if err := checkVersion(v); err != nil {
					return fmt.Errorf("%s: %w", fset.Position(c.Pos()), err)
				}
				if ex.Version != "" && ex.Version != v {
					return fmt.Errorf("pggo build: %s: %s %s, but %s says %s", fset.Position(c.Pos()), VersionDirective, v, where, ex.Version)
				}
				ex.Version, where = v, fset.Position(c.Pos())
			}
		}
	}
	return nil
}

// FmgrPath is the import path whose Register calls become SQL functions.
const FmgrPath = "github.com/pggo/pggo/fmgr"

// FindExports lists the string literals passed to bgworker.RegisterFunction
// and fmgr.Register in the main package in dir. Each name becomes a C symbol
// of the loader, so it must be a literal and a C identifier. It also checks
// every string literal given to a Builder's SetFunction against those names,
// so a typo fails the build instead of the server's start.
func FindExports(dir string) (*Exports, error) {
	pkg, err := build.ImportDir(dir, 0)
	if err != nil {
		return nil, fmt.Errorf("pggo build: %s: %w", dir, err)
	}
	if pkg.Name != "main" {
		return nil, fmt.Errorf("pggo build: %s is package %s; an extension is a main package", dir, pkg.Name)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, f := range append(append([]string{}, pkg.GoFiles...), pkg.CgoFiles...) {
		file, err := parser.ParseFile(fset, filepath.Join(dir, f), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files = append(files, file)
	}
	builders := findBuilders(files)
	seen := map[string]bool{}
	ex := &Exports{}
	if err := findVersion(fset, files, ex); err != nil {
		return nil, err
	}
	var uses []functionUse
	for _, file := range files {
		aliases := map[string]string{} // local package name -> import path
		for _, imp := range file.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p != BgworkerPath && p != FmgrPath {
				continue
			}
			name := filepath.Base(p)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			aliases[name] = p
		}
		// Files without either import are inspected too: they may call
		// SetFunction on a Builder made in another file.
		var inspectErr error
		literal := func(call *ast.CallExpr, i int, what string) (string, bool) {
			if len(call.Args) <= i {
				return "", false
			}
			lit, ok := call.Args[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				inspectErr = fmt.Errorf("pggo build: %s: the %s given to %s must be a string literal",
					fset.Position(call.Pos()), what, callName(call))
				return "", false
			}
			v, _ := strconv.Unquote(lit.Value)
			return v, true
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if inspectErr != nil {
				return false
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if sel.Sel.Name == "SetFunction" && len(call.Args) == 1 && builders.is(sel.X, aliases) {
				// Only literals can be checked; a computed name is the
				// server's to check when the worker is loaded.
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					v, _ := strconv.Unquote(lit.Value)
					// The literal's position: a chain's call starts lines earlier.
					uses = append(uses, functionUse{name: v, pos: fset.Position(lit.Pos())})
				}
				return true
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok {
				return true
			}
			path := aliases[id.Name]
			isWorker := path == BgworkerPath && sel.Sel.Name == "RegisterFunction"
			isSQL := path == FmgrPath && sel.Sel.Name == "Register"
			if !isWorker && !isSQL {
				return true
			}
			name, ok := literal(call, 0, "name")
			if !ok {
				return false
			}
			if err := checkSymbol(name); err != nil {
				inspectErr = fmt.Errorf("pggo build: %s: %s(%q): %v", fset.Position(call.Pos()), callName(call), name, err)
				return false
			}
			if seen[name] {
				inspectErr = fmt.Errorf("pggo build: %s: %s(%q): the name is already registered", fset.Position(call.Pos()), callName(call), name)
				return false
			}
			seen[name] = true
			if isWorker {
				ex.Workers = append(ex.Workers, name)
				return true
			}
			sig, ok := literal(call, 1, "signature")
			if !ok {
				return false
			}
			ex.SQL = append(ex.SQL, SQLFunc{Name: name, Signature: sig})
			return true
		})
		if inspectErr != nil {
			return nil, inspectErr
		}
	}
	if len(ex.Workers) == 0 && len(ex.SQL) == 0 {
		return nil, fmt.Errorf("pggo build: %s registers no worker function: call bgworker.RegisterFunction(\"name\", fn) in an init function", dir)
	}
	sort.Strings(ex.Workers)
	sort.Slice(ex.SQL, func(i, j int) bool { return ex.SQL[i].Name < ex.SQL[j].Name })
	if err := checkFunctionUses(uses, ex); err != nil {
		return nil, err
	}
	return ex, nil
}

// functionUse is a string literal given to Builder.SetFunction.
type functionUse struct {
	name string
	pos  token.Position
}

// checkFunctionUses refuses SetFunction literals that name no registered
// worker function, with the message the server would give at start.
func checkFunctionUses(uses []functionUse, ex *Exports) error {
	for _, u := range uses {
		if slices.Contains(ex.Workers, u.name) {
			continue
		}
		msg := fmt.Sprintf("pggo build: %s: SetFunction(%q): %q is not registered: call bgworker.RegisterFunction(%q, ...) in an init function",
			u.pos, u.name, u.name, u.name)
		if slices.ContainsFunc(ex.SQL, func(f SQLFunc) bool { return f.Name == u.name }) {
			msg += " (it is a SQL function, registered with fmgr.Register)"
		}
		if len(ex.Workers) > 0 {
			msg += " (registered worker functions: " + strings.Join(ex.Workers, ", ") + ")"
		}
		return errors.New(msg)
	}
	return nil
}

// builderNames are the identifiers that, syntactically, hold or return a
// bgworker.Builder. pggo build does not type-check (it would need the
// extension's dependencies compiled), so scopes are ignored: a name counts
// if it is bound to a Builder anywhere in the package. That is enough to
// recognize the usual forms without mistaking another type's SetFunction.
type builderNames struct {
	vars  map[string]bool // variables, parameters, fields: var b = bgworker.New(...), b *bgworker.Builder
	funcs map[string]bool // functions returning one: func dyn() *bgworker.Builder
}

// findBuilders collects builderNames over the package's files.
func findBuilders(files []*ast.File) builderNames {
	bn := builderNames{vars: map[string]bool{}, funcs: map[string]bool{}}
	// Twice, so that a name bound in one file to a function of a later one
	// is found too.
	for _, file := range append(slices.Clone(files), files...) {
		aliases := map[string]string{}
		for _, imp := range file.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == BgworkerPath {
				name := filepath.Base(p)
				if imp.Name != nil {
					name = imp.Name.Name
				}
				aliases[name] = p
			}
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				if r := n.Type.Results; n.Recv == nil && r != nil && len(r.List) == 1 && isBuilderType(r.List[0].Type, aliases) {
					bn.funcs[n.Name.Name] = true
				}
			case *ast.Field: // parameters, results, struct fields
				if isBuilderType(n.Type, aliases) {
					for _, id := range n.Names {
						bn.vars[id.Name] = true
					}
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if (n.Type != nil && isBuilderType(n.Type, aliases)) || (i < len(n.Values) && bn.is(n.Values[i], aliases)) {
						bn.vars[id.Name] = true
					}
				}
			case *ast.AssignStmt:
				if len(n.Lhs) == len(n.Rhs) {
					for i, l := range n.Lhs {
						if id, ok := l.(*ast.Ident); ok && bn.is(n.Rhs[i], aliases) {
							bn.vars[id.Name] = true
						}
					}
				}
			}
			return true
		})
	}
	return bn
}

// isBuilderType reports whether t is bgworker.Builder or *bgworker.Builder.
func isBuilderType(t ast.Expr, aliases map[string]string) bool {
	if star, ok := t.(*ast.StarExpr); ok {
		t = star.X
	}
	sel, ok := t.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && aliases[id.Name] == BgworkerPath && sel.Sel.Name == "Builder"
}

// is reports whether e evaluates to a Builder: a chain of method calls
// rooted at bgworker.New, at a call of a function returning a Builder, or at
// a name bound to one.
func (bn builderNames) is(e ast.Expr, aliases map[string]string) bool {
	for {
		switch x := e.(type) {
		case *ast.ParenExpr:
			e = x.X
		case *ast.Ident:
			return bn.vars[x.Name]
		case *ast.SelectorExpr: // a field, such as s.builder
			if id, ok := x.X.(*ast.Ident); ok && aliases[id.Name] != "" {
				return false // a package-level name of bgworker or fmgr
			}
			return bn.vars[x.Sel.Name]
		case *ast.CallExpr:
			switch fun := x.Fun.(type) {
			case *ast.Ident:
				return bn.funcs[fun.Name]
			case *ast.SelectorExpr:
				if id, ok := fun.X.(*ast.Ident); ok && aliases[id.Name] != "" {
					return aliases[id.Name] == BgworkerPath && fun.Sel.Name == "New"
				}
				e = fun.X // a method of the chain: look at its receiver
			default:
				return false
			}
		default:
			return false
		}
	}
}

func callName(call *ast.CallExpr) string {
	sel := call.Fun.(*ast.SelectorExpr)
	return sel.X.(*ast.Ident).Name + "." + sel.Sel.Name
}

// checkSymbol refuses names that cannot be, or must not be, C symbols.
func checkSymbol(s string) error {
	if !isCIdentifier(s) {
		return fmt.Errorf("not a C identifier (letters, digits, '_')")
	}
	if strings.HasPrefix(s, "pggo_") || strings.HasPrefix(s, "_PG_") || strings.HasPrefix(s, "Pg_") || strings.HasPrefix(s, "pg_finfo_") {
		return fmt.Errorf("names starting with pggo_, _PG_, Pg_ or pg_finfo_ are reserved")
	}
	return nil
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
	if ctx.Done() != nil {
		// A build its caller can cancel stops whole: go build's compilers
		// and linker too (its process group), so nothing writes into the
		// output after the caller removed it. Such a caller handles the
		// terminal's signals itself: the group is no longer the terminal's.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
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
		// The pggo tag adds Go exit hooks (internal/pg/exithook_pggo.go), so
		// that os.Exit and log.Fatal leave through PostgreSQL's proc_exit
		// instead of crashing the cluster; they are reached by linkname,
		// which needs -checklinkname=0.
		"-tags=pggo",
		// Async preemption signals are SIGURG; with it on, Go's threads take
		// the SIGURG that PostgreSQL's SetLatch sends and wake-ups are lost.
		// cgocheck=0: pggo passes only pointer-free Go memory to C, and the
		// check costs ~0.14 µs on every statement.
		"-ldflags=-checklinkname=0 -X=runtime.godebugDefault=asyncpreemptoff=1,cgocheck=0",
		"-o", out, ".")
	os.Remove(strings.TrimSuffix(out, ".so") + ".h")
	return err
}

// DefaultPGConfig is the pg_config used when none is given:
// $PGGO_PG_CONFIG (what `pggo init` prints, to build and test against
// another PostgreSQL without passing it everywhere), else pg_config on PATH.
func DefaultPGConfig() string {
	return defaultString(os.Getenv("PGGO_PG_CONFIG"), "pg_config")
}

// PGConfig asks pg_config for one setting.
func PGConfig(ctx context.Context, pgConfig, flag string) (string, error) {
	pgConfig = defaultString(pgConfig, DefaultPGConfig())
	out, err := exec.CommandContext(ctx, pgConfig, flag).Output()
	if err != nil {
		return "", fmt.Errorf("pggo build: %s %s: %v (are PostgreSQL's server headers installed? On Debian: postgresql-server-dev-15)", pgConfig, flag, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func buildLoader(ctx context.Context, pgConfig, goLib string, ex *Exports, out string) error {
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
	files := pg.LoaderFiles()
	files["trampolines.c"] = Trampolines(goLib, ex)
	for n, content := range files {
		if err := os.WriteFile(filepath.Join(tmp, n), []byte(content), 0o644); err != nil {
			return err
		}
	}
	args := append(flags,
		// PostgreSQL 15 leaves PGDLLEXPORT empty; make exports explicit.
		`-DPGDLLEXPORT=__attribute__((visibility("default")))`,
		// The same sources give the same loader, byte for byte (the
		// temporary directory's name would otherwise be in the debug
		// info): pggo install tells whether the loader changed.
		"-ffile-prefix-map="+tmp+"=.",
		"-I", tmp, "-I", inc, "-shared", "-o", out)
	args = append(args, pg.LoaderCFiles()...)
	args = append(args, "trampolines.c")
	return run(ctx, tmp, nil, "cc", args...)
}

// Trampolines is the generated C file: one exported function per worker
// function and per SQL function, each handing over to the loader, and the Go
// library's file name.
func Trampolines(goLib string, ex *Exports) string {
	var b strings.Builder
	b.WriteString("/* Generated by `pggo build`. Do not edit. */\n")
	b.WriteString("#include \"postgres.h\"\n#include \"fmgr.h\"\n\n")
	b.WriteString("#define PGGO_HIDDEN __attribute__((visibility(\"hidden\")))\n")
	b.WriteString("extern PGGO_HIDDEN void pggo_loader_run_worker(const char *function, Datum arg);\n")
	b.WriteString("extern PGGO_HIDDEN Datum pggo_loader_call_function(const char *function, FunctionCallInfo fcinfo);\n")
	fmt.Fprintf(&b, "PGGO_HIDDEN const char pggo_go_library_name[] = %s;\n\n", strconv.Quote(goLib))
	b.WriteString("/* Background worker entry points (bgworker.RegisterFunction). */\n")
	for _, f := range ex.Workers {
		fmt.Fprintf(&b, "extern PGDLLEXPORT void %s(Datum arg);\n", f)
		fmt.Fprintf(&b, "void\n%s(Datum arg)\n{\n\tpggo_loader_run_worker(%q, arg);\n}\n\n", f, f)
	}
	b.WriteString("/* SQL-callable functions (fmgr.Register). */\n")
	for _, f := range ex.SQL {
		fmt.Fprintf(&b, "PG_FUNCTION_INFO_V1(%s);\n", f.Name)
		fmt.Fprintf(&b, "Datum\n%s(PG_FUNCTION_ARGS)\n{\n\treturn pggo_loader_call_function(%q, fcinfo);\n}\n\n", f.Name, f.Name)
	}
	return b.String()
}

// SQLScript is NAME.sql: CREATE FUNCTION for every fmgr function, each then
// revoked from PUBLIC, since SQL-callable Go code can start processes.
func SQLScript(loader string, funcs []SQLFunc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "-- Generated by `pggo build` for %s.\n", loader)
	b.WriteString("-- Run it in each database that calls these functions. Every function is\n")
	b.WriteString("-- revoked from PUBLIC: GRANT EXECUTE to the roles that may call it.\n")
	lit := "'" + strings.ReplaceAll(loader, "'", "''") + "'"
	for _, f := range funcs {
		fmt.Fprintf(&b, "CREATE OR REPLACE FUNCTION %s%s\n    AS %s, '%s' LANGUAGE C;\n", f.Name, f.Signature, lit, f.Name)
		fmt.Fprintf(&b, "REVOKE ALL ON FUNCTION %s FROM PUBLIC;\n", f.Name)
	}
	// Every loader can wake pggo workers from SQL (plain C, no Go in the
	// calling backend); see the README's "Waking a worker from SQL".
	b.WriteString("-- Wake a pggo worker by pid, or every worker of a type (bgw_type).\n")
	for _, f := range wakeFuncs {
		fmt.Fprintf(&b, "CREATE OR REPLACE FUNCTION %s%s\n    AS %s, '%s' LANGUAGE C;\n", f.Name, f.Signature, lit, f.Name)
		fmt.Fprintf(&b, "REVOKE ALL ON FUNCTION %s FROM PUBLIC;\n", f.Name)
	}
	return b.String()
}
