package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pggo/pggo/internal/build"
)

func pgConfigValue(pgConfig, flag string) (string, error) {
	return build.PGConfig(context.Background(), pgConfig, flag)
}

// installTree builds the extension and lays its files out under
// destdir+pkglibdir, with its SQL script pointing at the installed loader,
// and its CREATE EXTENSION files under destdir+sharedir/extension.
// It returns the installed files and the library name. Every file replaces
// its old version by rename (replaceFile); an unchanged loader is left as it
// is, and loader says which: "new", "unchanged" or "changed".
func installTree(bf buildFlags, dir, destdir string) (files []string, name, loader string, err error) {
	tmp, err := os.MkdirTemp("", "pggo-install-")
	if err != nil {
		return nil, "", "", err
	}
	defer os.RemoveAll(tmp)
	res, err := bf.build(dir, tmp)
	if err != nil {
		return nil, "", "", err
	}
	libdir, err := pgConfigValue(*bf.pgConfig, "--pkglibdir")
	if err != nil {
		return nil, "", "", err
	}
	target := filepath.Join(destdir, libdir)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, "", "", err
	}
	name = strings.TrimSuffix(filepath.Base(res.Loader), ".so")
	loader = "new"
	if old, err := os.ReadFile(filepath.Join(target, filepath.Base(res.Loader))); err == nil {
		loader = "changed"
		// Builds are reproducible: the same sources give the same loader.
		if now, err := os.ReadFile(res.Loader); err == nil && bytes.Equal(old, now) {
			loader = "unchanged"
		}
	}
	for _, f := range []string{res.GoLibrary, res.Loader} {
		dst := filepath.Join(target, filepath.Base(f))
		if f == res.Loader && loader == "unchanged" {
			files = append(files, dst)
			continue
		}
		if err := copyFile(f, dst, 0o755); err != nil {
			return nil, "", "", err
		}
		files = append(files, dst)
	}
	if len(res.Exports.SQL) > 0 {
		// The script names the loader where the server will find it.
		dst := filepath.Join(target, name+".sql")
		script := build.SQLScript(filepath.Join(libdir, name+".so"), res.Exports.SQL)
		if err := replaceFile(dst, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, script); return err }); err != nil {
			return nil, "", "", err
		}
		files = append(files, dst)
	}
	share, err := pgConfigValue(*bf.pgConfig, "--sharedir")
	if err != nil {
		return nil, "", "", err
	}
	extdir := filepath.Join(destdir, share, "extension")
	if err := os.MkdirAll(extdir, 0o755); err != nil {
		return nil, "", "", err
	}
	for _, f := range append([]string{res.ControlFile}, res.Scripts...) {
		dst := filepath.Join(extdir, filepath.Base(f))
		if err := copyFile(f, dst, 0o644); err != nil {
			return nil, "", "", err
		}
		files = append(files, dst)
	}
	return files, name, loader, nil
}

// copyFile installs src as dst (see replaceFile).
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return replaceFile(dst, mode, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// replaceFile writes dst through a temporary file in its directory, then
// renames it over dst. A running server keeps the old file mapped in every
// process that loaded it (the postmaster, workers, sessions); rename only
// swaps the directory entry, so those mappings stay valid and new processes
// load the new file. Writing dst in place (O_TRUNC) would change the pages
// under them: a SIGBUS or garbage code, then crash recovery.
func replaceFile(dst string, mode os.FileMode, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	// CreateTemp makes 0600; the server runs as another user.
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	done = true
	return nil
}

func runInstall(args []string) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	bf := addBuildFlags(fs, false)
	destdir := fs.String("destdir", "", "stage the files under this directory instead of the live system (for packaging)")
	dir, err := parse(fs, args, `usage: pggo install [flags] [PACKAGE_DIR]

Builds the extension and copies its libraries (and NAME.sql) into
$(pg_config --pkglibdir) and its CREATE EXTENSION files (NAME.control,
NAME--VERSION.sql, upgrade scripts) into $(pg_config --sharedir)/extension,
or under --destdir. Then add the library to shared_preload_libraries,
restart PostgreSQL and run CREATE EXTENSION NAME in each database that
calls its SQL functions.

Over an installed version, each file is replaced by rename, so a running
server's processes keep the old files they mapped; an unchanged loader is
left as it is, and pggo install says whether a restart is needed (see the
README's "Deploying and upgrading").
`)
	if err != nil {
		return err
	}
	files, name, loader, err := installTree(bf, dir, *destdir)
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Println(f)
	}
	switch loader {
	case "unchanged":
		fmt.Fprintf(os.Stderr, "pggo install: replaced %s's Go library; its loader %s.so is unchanged, so a running server needs no restart:\n"+
			"  new sessions and newly started workers run the new code; running ones keep the old until they exit\n"+
			"  (restart a static worker with pg_terminate_backend; see the README's \"Deploying and upgrading\")\n", name, name)
	case "changed":
		fmt.Fprintf(os.Stderr, "pggo install: the loader %s.so changed (new worker or SQL functions, or another pggo or PostgreSQL):\n"+
			"  restart PostgreSQL to run this build; until then running processes keep the old files\n", name)
	default:
		fmt.Fprintf(os.Stderr, "pggo install: add to postgresql.conf, then restart PostgreSQL:\n  shared_preload_libraries = '%s'\n", name)
		fmt.Fprintf(os.Stderr, "then, in each database that calls its SQL functions: CREATE EXTENSION %s;\n", name)
	}
	if loader != "new" {
		fmt.Fprintf(os.Stderr, "for a new extension version (upgrade scripts in sql/): ALTER EXTENSION %s UPDATE; in each database that has it\n", name)
	}
	return nil
}

func runPackage(args []string) error {
	fs := flag.NewFlagSet("package", flag.ContinueOnError)
	bf := addBuildFlags(fs, false)
	out := fs.String("o", "", "the tarball to write (default NAME-pgMAJOR.tar.gz in the current directory)")
	dir, err := parse(fs, args, `usage: pggo package [flags] [PACKAGE_DIR]

Builds the extension and writes a tarball whose paths are those of the
target PostgreSQL's library directory, with INSTALL.txt. Install it with
tar -xzf FILE -C / on a machine with the same PostgreSQL.
`)
	if err != nil {
		return err
	}
	stage, err := os.MkdirTemp("", "pggo-package-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	_, name, _, err := installTree(bf, dir, stage)
	if err != nil {
		return err
	}
	version, err := pgConfigValue(*bf.pgConfig, "--version")
	if err != nil {
		return err
	}
	major := "pg"
	if f := strings.Fields(version); len(f) >= 2 {
		major += strings.SplitN(f[1], ".", 2)[0]
	}
	tarball := *out
	if tarball == "" {
		tarball = fmt.Sprintf("%s-%s.tar.gz", name, major)
	}
	note := fmt.Sprintf(`%s: a pggo extension (PostgreSQL background workers in Go), built for %s.

Install:   tar -xzf %s -C /
Configure: shared_preload_libraries = '%s'   (postgresql.conf), then restart PostgreSQL.
`, name, version, filepath.Base(tarball), name)
	note += fmt.Sprintf("SQL:       CREATE EXTENSION %s;   (in each database that calls its functions)\n", name)
	if err := os.WriteFile(filepath.Join(stage, "INSTALL.txt"), []byte(note), 0o644); err != nil {
		return err
	}
	if err := writeTarball(tarball, stage); err != nil {
		return err
	}
	abs, _ := filepath.Abs(tarball)
	fmt.Println(abs)
	return nil
}

// writeTarball packs dir's contents with paths relative to it.
func writeTarball(path, dir string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = rel
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.Copy(tw, in)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := gz.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

const testUsage = `usage: pggo test [-pg-config PATH] [PACKAGE_DIR] [go test flags and packages]

Runs the extension's Go tests: go test -count=1 ./... in PACKAGE_DIR
(default: the current directory). Tests written with package pgtest build
the extension and start real PostgreSQL servers. Every argument after
PACKAGE_DIR (or after pggo test's own flags) goes to go test unchanged, e.g.
  pggo test -v -run TestWorkerTicks
  pggo test ./myext -count=3 -timeout 5m
so go test itself reports a flag it does not know (pggo test exits with its
status). Package
patterns given there replace ./...
`

// runTest implements pggo test. Its own flags (-pg-config, -h) come first;
// the first argument that is not one of them, if it does not start with
// "-", is the package directory; everything after goes to go test, which
// is why this does not use flag.Parse (it would reject -v and -run).
func runTest(args []string) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	pgConfig := fs.String("pg-config", os.Getenv("PGGO_PG_CONFIG"), "pg_config of the target PostgreSQL")
	var own []string
	for len(args) > 0 {
		a := args[0]
		name := strings.TrimLeft(a, "-")
		if !strings.HasPrefix(a, "-") || a == "--" {
			break
		}
		if name == "h" || name == "help" {
			own = append(own, a)
			args = args[1:]
			continue
		}
		if name == "pg-config" && len(args) > 1 {
			own, args = append(own, a, args[1]), args[2:]
			continue
		}
		if strings.HasPrefix(name, "pg-config=") {
			own, args = append(own, a), args[1:]
			continue
		}
		break // a go test flag
	}
	if err := parseFlags(fs, own, testUsage); err != nil {
		return err
	}
	dir := "."
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		dir, args = args[0], args[1:]
	}
	// Packages named among the passed arguments replace ./...: a word not
	// starting with "-" that is not the value of the flag before it. Flags
	// of go test that take a separate value are the ones listed here.
	valued := map[string]bool{"run": true, "skip": true, "count": true, "timeout": true, "bench": true,
		"benchtime": true, "cpu": true, "parallel": true, "p": true, "tags": true, "coverprofile": true,
		"cpuprofile": true, "memprofile": true, "o": true, "exec": true, "shuffle": true, "list": true,
		"covermode": true, "coverpkg": true, "blockprofile": true, "mutexprofile": true, "outputdir": true,
		"trace": true, "fuzz": true, "fuzztime": true, "fuzzminimizetime": true, "vet": true, "ldflags": true, "gcflags": true}
	pkgs := false
	for i, a := range args {
		if a == "-args" || a == "--args" {
			break
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		prev := ""
		if i > 0 {
			prev = strings.TrimLeft(args[i-1], "-")
		}
		if i > 0 && strings.HasPrefix(args[i-1], "-") && !strings.Contains(prev, "=") && valued[prev] {
			continue
		}
		pkgs = true
	}
	goArgs := []string{"test", "-count=1"}
	if !pkgs {
		goArgs = append(goArgs, "./...")
	}
	goArgs = append(goArgs, args...)
	cmd := exec.Command("go", goArgs...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	if *pgConfig != "" {
		cmd.Env = append(cmd.Env, "PGGO_PG_CONFIG="+*pgConfig)
	}
	if err := cmd.Run(); err != nil {
		var xe *exec.ExitError
		if errors.As(err, &xe) && xe.ExitCode() > 0 {
			// go test printed why; exit as it did.
			return exitError{xe.ExitCode()}
		}
		return fmt.Errorf("pggo test: %v", err)
	}
	return nil
}
