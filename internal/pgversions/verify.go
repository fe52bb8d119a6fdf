package pgversions

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// checkModule is compiled with the layout's pg_config and preloaded by
// verify: if the headers do not fit the server (another major version, a
// different ABI), PostgreSQL refuses the module's magic block and does not
// start, which is exactly the mismatch a pggo loader would hit later.
const checkModule = `#include "postgres.h"
#include "fmgr.h"

PG_MODULE_MAGIC;

extern PGDLLEXPORT void _PG_init(void);

void
_PG_init(void)
{
	char		buf[NAMEDATALEN];

	/* pggo's loader uses strlcpy: it must be declared and resolve. */
	strlcpy(buf, "pggo pgversions check module", sizeof(buf));
	elog(LOG, "%s loaded (headers " PG_VERSION ")", buf);
}
`

const checkModuleLog = "pggo pgversions check module loaded"

// verify compiles the check module with l.PGConfig (as pggo build would),
// then initdb's a throwaway cluster, starts it with the module preloaded,
// asks it its version when a psql is at hand, and stops it.
func (in *installer) verify(ctx context.Context, l *Layout) error {
	start := time.Now()
	su, err := lookupServerUser()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "pggo-verify-")
	if err != nil {
		return fmt.Errorf("pgversions: %w", err)
	}
	defer os.RemoveAll(tmp)
	// A short socket directory of its own: socket paths are limited to
	// 107 bytes and the port then only names the socket file.
	sock, err := os.MkdirTemp("/tmp", "pgv")
	if err != nil {
		return fmt.Errorf("pgversions: %w", err)
	}
	defer os.RemoveAll(sock)
	for _, d := range []string{tmp, sock} {
		if err := os.Chmod(d, 0o755); err != nil {
			return fmt.Errorf("pgversions: %w", err)
		}
		if err := su.own(d); err != nil {
			return err
		}
	}
	if su.switches() {
		if err := in.grantTraverse(tmp); err != nil {
			return err
		}
	}

	module, err := in.compileCheckModule(ctx, l, tmp)
	if err != nil {
		return err
	}

	data := filepath.Join(tmp, "data")
	logPath := filepath.Join(tmp, "server.log")
	in.logf("verify: initdb")
	cmd := su.command(ctx, filepath.Join(l.BinDir, "initdb"),
		"-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgversions: verify: initdb failed: %v\n%s", err, out)
	}
	const port = 5432 // no TCP listener: only names the socket in sock
	conf := fmt.Sprintf("\n# pggo pgversions check\nport = %d\nlisten_addresses = ''\nunix_socket_directories = '%s'\nlogging_collector = off\nfsync = off\n",
		port, sock)
	if module != "" {
		conf += fmt.Sprintf("shared_preload_libraries = '%s'\n", module)
	}
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgversions: %w", err)
	}
	_, err = f.WriteString(conf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgversions: %w", err)
	}
	pgctl := func(args ...string) error {
		cmd := su.command(ctx, filepath.Join(l.BinDir, "pg_ctl"), args...)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			logb, _ := os.ReadFile(logPath)
			return fmt.Errorf("pgversions: verify: pg_ctl %s failed: %v\n%s\n--- server log ---\n%s", args[0], err, out, logb)
		}
		return nil
	}
	in.logf("verify: starting the server")
	if err := pgctl("start", "-w", "-t", "60", "-D", data, "-l", logPath, "-o", ""); err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			// Not ctx: the server must go even when we were cancelled.
			cmd := su.command(context.Background(), filepath.Join(l.BinDir, "pg_ctl"), "stop", "-m", "immediate", "-w", "-D", data)
			cmd.Run()
		}
	}()
	logb, _ := os.ReadFile(logPath)
	if module != "" && !strings.Contains(string(logb), checkModuleLog) {
		return fmt.Errorf("pgversions: verify: the server started but did not log loading the check module\n--- server log ---\n%s", logb)
	}
	if psql := filepath.Join(l.BinDir, "psql"); fileExists(psql) {
		out, err := exec.CommandContext(ctx, psql, "-X", "-A", "-t", "-h", sock, "-p", strconv.Itoa(port),
			"-U", "postgres", "-d", "postgres", "-c", "SELECT current_setting('server_version_num')").CombinedOutput()
		if err != nil {
			return fmt.Errorf("pgversions: verify: psql: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, strconv.Itoa(l.Major)) {
			return fmt.Errorf("pgversions: verify: the server reports version %s, want %d", got, l.Major)
		}
		in.logf("verify: psql connected, server_version_num %s", strings.TrimSpace(string(out)))
	}
	if err := pgctl("stop", "-m", "fast", "-w", "-t", "60", "-D", data); err != nil {
		return err
	}
	stopped = true
	with := ""
	if module != "" {
		with = " with a module built against its headers"
	}
	in.logf("verify: server started%s and stopped (%s)", with, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// compileCheckModule builds checkModule into dir the way pggo build builds
// a loader: cc with what pg_config says. Without a C compiler there is
// nothing to check the headers with, which is reported, not fatal: the
// server can still be used, and pggo build will say what is missing.
func (in *installer) compileCheckModule(ctx context.Context, l *Layout, dir string) (string, error) {
	if _, err := exec.LookPath("cc"); err != nil {
		in.logf("verify: no C compiler (cc), so the headers are not checked; pggo build needs one (apt-get install gcc)")
		return "", nil
	}
	var flags []string
	for _, f := range []string{"--cppflags", "--cflags", "--cflags_sl"} {
		out, err := run(ctx, dir, l.PGConfig, f)
		if err != nil {
			return "", err
		}
		flags = append(flags, strings.Fields(string(out))...)
	}
	out, err := run(ctx, dir, l.PGConfig, "--includedir-server")
	if err != nil {
		return "", err
	}
	inc := strings.TrimSpace(string(out))
	src := filepath.Join(dir, "pggo_check.c")
	so := filepath.Join(dir, "pggo_check.so")
	if err := os.WriteFile(src, []byte(checkModule), 0o644); err != nil {
		return "", fmt.Errorf("pgversions: %w", err)
	}
	in.logf("verify: compiling a module with %s", l.PGConfig)
	// Undeclared functions (see libcDecls) would only warn.
	args := append(flags, "-Werror=implicit-function-declaration", "-I", inc, "-shared", "-o", so, src)
	if _, err := run(ctx, dir, "cc", args...); err != nil {
		return "", fmt.Errorf("pgversions: verify: the server headers do not compile: %w", err)
	}
	if err := os.Chmod(so, 0o755); err != nil {
		return "", fmt.Errorf("pgversions: %w", err)
	}
	return so, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// makeReadable makes the install tree readable (and its programs and
// directories usable) by everyone, because the server runs as the postgres
// user when we are root, and as root first reaches the tree through
// directories only root may enter.
func (in *installer) makeReadable() error {
	for _, d := range treeDirs {
		err := filepath.WalkDir(filepath.Join(in.root, d), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.Type()&fs.ModeSymlink != 0 {
				return nil
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			mode := fi.Mode().Perm() | 0o444
			if e.IsDir() || mode&0o100 != 0 {
				mode |= 0o111
			}
			if mode != fi.Mode().Perm() {
				return os.Chmod(path, mode)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("pgversions: %w", err)
		}
	}
	if os.Geteuid() == 0 {
		return in.grantTraverse(in.root)
	}
	return nil
}
