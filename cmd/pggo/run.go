package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// settingsFlag collects -c name=value.
type settingsFlag map[string]string

func (s settingsFlag) String() string { return "" }
func (s settingsFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	s[name] = value
	return nil
}

func runRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	bf := addBuildFlags(fs, false)
	settings := settingsFlag{}
	fs.Var(settings, "c", "a PostgreSQL setting name=value (repeatable)")
	pgBin := fs.String("pg-bin", os.Getenv("PGGO_PG_BIN"), "directory of initdb/pg_ctl/postgres (default: pg_config --bindir)")
	dir, err := parse(fs, args, `usage: pggo run [flags] [PACKAGE_DIR]

Builds the extension, starts a throwaway PostgreSQL cluster with it
preloaded (data in a temporary directory, a Unix socket only), runs
CREATE EXTENSION NAME in database postgres (from a private installation:
nothing is written into the system's PostgreSQL), prints how to connect and streams the
server log. Ctrl-C, SIGTERM or a closed output (SIGPIPE, e.g. piped into a
tee that exits) stops the server and removes the cluster and the build.
`)
	if err != nil {
		return err
	}
	// Every way pggo run is told to stop ends in the same clean-up: the
	// server stopped and the temporary directory removed. Caught before
	// anything is made, so no signal can end the process in between.
	// SIGPIPE (output piped into a tee that dies) would otherwise kill the
	// process at its next write; caught, the write fails with EPIPE instead.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM, syscall.SIGPIPE)
	defer signal.Stop(stop)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stopSig atomic.Value // the signal that asked pggo run to stop
	go func() {
		select {
		case sig := <-stop:
			stopSig.Store(sig)
			cancel()
		case <-ctx.Done():
		}
	}()
	stopped := func() (os.Signal, bool) {
		sig, ok := stopSig.Load().(os.Signal)
		return sig, ok
	}

	out, err := os.MkdirTemp("", "pggo-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	os.Chmod(out, 0o755)
	// go build's own work directory inside ours: if the build is killed,
	// what it leaves goes with ours.
	os.Setenv("GOTMPDIR", out)
	fmt.Fprintln(os.Stderr, "pggo run: building")
	res, err := bf.buildContext(ctx, dir, out)
	if sig, ok := stopped(); ok {
		return fmt.Errorf("pggo run: %v while building; nothing left behind", sig)
	}
	if err != nil {
		return err
	}
	if *pgBin == "" && *bf.pgConfig != "" {
		if b, err := pgConfigValue(*bf.pgConfig, "--bindir"); err == nil {
			*pgBin = b
		}
	}
	fmt.Fprintln(os.Stderr, "pggo run: starting PostgreSQL with", res.Loader)
	// Its CREATE EXTENSION files in the cluster's private installation.
	c, err := pgtest.Launch(pgtest.Options{PGBin: *pgBin, Preload: []string{res.Loader}, Settings: settings, Extensions: []*pgtest.Extension{pgtest.ExtensionOf(res)}})
	if err != nil {
		return err
	}
	defer c.Close()
	var f *os.File // the server log, once it is streamed
	shutdown := func(why string) error {
		fmt.Fprintf(os.Stderr, "\npggo run: %s: stopping PostgreSQL\n", why)
		err := c.Close()
		if f != nil {
			io.Copy(os.Stdout, f) // the shutdown's log lines
		}
		if err == nil {
			fmt.Fprintln(os.Stderr, "pggo run: stopped, cluster removed")
		}
		return err
	}
	if sig, ok := stopped(); ok { // while the server started
		return shutdown(sig.String())
	}
	name := strings.TrimSuffix(filepath.Base(res.Loader), ".so")
	{
		conn, err := pgx.Connect(ctx, c.ConnString())
		if err == nil {
			_, err = conn.Exec(ctx, "CREATE EXTENSION "+pgx.Identifier{name}.Sanitize())
			conn.Close(context.Background())
		}
		if sig, ok := stopped(); ok {
			return shutdown(sig.String())
		}
		if err != nil {
			return fmt.Errorf("pggo run: CREATE EXTENSION %s: %v", name, err)
		}
	}
	fmt.Fprintf(os.Stderr, `pggo run: PostgreSQL is running (postmaster pid %d).
  connect:  psql -h %s -p %d -U postgres postgres
  log:      %s (streamed below)
  stop:     Ctrl-C
`, c.PostmasterPID(), c.SocketDir(), c.Port(), c.LogPath())

	if f, err = os.Open(c.LogPath()); err != nil {
		return err
	}
	defer f.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := io.Copy(os.Stdout, f); errors.Is(err, syscall.EPIPE) {
			return shutdown("output closed")
		}
		select {
		case <-ctx.Done():
			sig, _ := stopped()
			return shutdown(fmt.Sprint(sig))
		case <-tick.C:
			if !c.Running() {
				io.Copy(os.Stdout, f)
				return fmt.Errorf("pggo run: the server stopped on its own (see the log above)")
			}
		}
	}
}
