package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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
preloaded (data in a temporary directory, a Unix socket only), creates its
SQL functions in database postgres, prints how to connect and streams the
server log. Ctrl-C stops the server and removes the cluster.
`)
	if err != nil {
		return err
	}
	out, err := os.MkdirTemp("", "pggo-run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(out)
	os.Chmod(out, 0o755)
	fmt.Fprintln(os.Stderr, "pggo run: building")
	res, err := bf.build(dir, out)
	if err != nil {
		return err
	}
	if *pgBin == "" && *bf.pgConfig != "" {
		if b, err := pgConfigValue(*bf.pgConfig, "--bindir"); err == nil {
			*pgBin = b
		}
	}
	fmt.Fprintln(os.Stderr, "pggo run: starting PostgreSQL with", res.Loader)
	c, err := pgtest.Launch(pgtest.Options{PGBin: *pgBin, Preload: []string{res.Loader}, Settings: settings})
	if err != nil {
		return err
	}
	defer c.Close()
	if len(res.Exports.SQL) > 0 {
		script, _ := os.ReadFile(res.SQLFile)
		conn, err := pgx.Connect(context.Background(), c.ConnString())
		if err == nil {
			_, err = conn.Exec(context.Background(), string(script))
			conn.Close(context.Background())
		}
		if err != nil {
			return fmt.Errorf("pggo run: creating the SQL functions: %v", err)
		}
	}
	fmt.Fprintf(os.Stderr, `pggo run: PostgreSQL is running (postmaster pid %d).
  connect:  psql -h %s -p %d -U postgres postgres
  log:      %s (streamed below)
  stop:     Ctrl-C
`, c.PostmasterPID(), c.SocketDir(), c.Port(), c.LogPath())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	f, err := os.Open(c.LogPath())
	if err != nil {
		return err
	}
	defer f.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		io.Copy(os.Stdout, f)
		select {
		case <-stop:
			fmt.Fprintln(os.Stderr, "\npggo run: stopping PostgreSQL")
			err := c.Close()
			io.Copy(os.Stdout, f)
			if err == nil {
				fmt.Fprintln(os.Stderr, "pggo run: stopped, cluster removed")
			}
			return err
		case <-tick.C:
			if !c.Running() {
				io.Copy(os.Stdout, f)
				return fmt.Errorf("pggo run: the server stopped on its own (see the log above)")
			}
		}
	}
}
