package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
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
// destdir+pkglibdir, with its SQL script pointing at the installed loader.
// It returns the installed files and the library name.
func installTree(bf buildFlags, dir, destdir string) ([]string, string, error) {
	tmp, err := os.MkdirTemp("", "pggo-install-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(tmp)
	res, err := bf.build(dir, tmp)
	if err != nil {
		return nil, "", err
	}
	libdir, err := pgConfigValue(*bf.pgConfig, "--pkglibdir")
	if err != nil {
		return nil, "", err
	}
	target := filepath.Join(destdir, libdir)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return nil, "", err
	}
	name := strings.TrimSuffix(filepath.Base(res.Loader), ".so")
	var files []string
	for _, f := range []string{res.GoLibrary, res.Loader} {
		dst := filepath.Join(target, filepath.Base(f))
		if err := copyFile(f, dst, 0o755); err != nil {
			return nil, "", err
		}
		files = append(files, dst)
	}
	if len(res.Exports.SQL) > 0 {
		// The script names the loader where the server will find it.
		dst := filepath.Join(target, name+".sql")
		script := build.SQLScript(filepath.Join(libdir, name+".so"), res.Exports.SQL)
		if err := os.WriteFile(dst, []byte(script), 0o644); err != nil {
			return nil, "", err
		}
		files = append(files, dst)
	}
	return files, name, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func runInstall(args []string) error {
	fs := flag.NewFlagSet("install", flag.ContinueOnError)
	bf := addBuildFlags(fs, false)
	destdir := fs.String("destdir", "", "stage the files under this directory instead of the live system (for packaging)")
	dir, err := parse(fs, args, `usage: pggo install [flags] [PACKAGE_DIR]

Builds the extension and copies its files into $(pg_config --pkglibdir),
or under --destdir. Then add the library to shared_preload_libraries and
restart PostgreSQL.
`)
	if err != nil {
		return err
	}
	files, name, err := installTree(bf, dir, *destdir)
	if err != nil {
		return err
	}
	for _, f := range files {
		fmt.Println(f)
	}
	fmt.Fprintf(os.Stderr, "pggo install: add to postgresql.conf, then restart PostgreSQL:\n  shared_preload_libraries = '%s'\n", name)
	for _, f := range files {
		if strings.HasSuffix(f, ".sql") {
			fmt.Fprintf(os.Stderr, "then create its SQL functions: psql -f %s\n", strings.TrimPrefix(f, *destdir))
		}
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
	files, name, err := installTree(bf, dir, stage)
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
	for _, f := range files {
		if strings.HasSuffix(f, ".sql") {
			note += fmt.Sprintf("SQL:       psql -f %s   (in each database that calls its functions)\n", strings.TrimPrefix(f, stage))
		}
	}
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

func runTest(args []string) error {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	pgConfig := fs.String("pg-config", os.Getenv("PGGO_PG_CONFIG"), "pg_config of the target PostgreSQL")
	dir, err := parse(fs, args, `usage: pggo test [flags] [PACKAGE_DIR]

Runs the extension's Go tests (go test -count=1 ./...). Tests written with
package pgtest build the extension and start real PostgreSQL servers.
`)
	if err != nil {
		return err
	}
	if dir == "" {
		dir = "."
	}
	cmd := exec.Command("go", "test", "-count=1", "./...")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	if *pgConfig != "" {
		cmd.Env = append(cmd.Env, "PGGO_PG_CONFIG="+*pgConfig)
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pggo test: %v", err)
	}
	return nil
}
