// Command pggo builds, runs, tests and packages pggo extensions: Go main
// packages that PostgreSQL runs as background workers.
//
//	pggo new NAME                  a ready-to-build extension with one worker and a test
//	pggo build [PACKAGE_DIR]       build; prints the files, the one to preload last
//	pggo run [PACKAGE_DIR]         build, start a throwaway server with it preloaded, stream its log
//	pggo test [PACKAGE_DIR]        go test, against a real server (package pgtest)
//	pggo install [PACKAGE_DIR]     copy the files into PostgreSQL's library directory
//	pggo package [PACKAGE_DIR]     a tarball to install elsewhere
//	pggo init [--pg VERSION]       make PostgreSQL 15, 17 or 18 available to build against
//
// Every command takes -pg-config PATH to target another PostgreSQL (pggo init
// prints it); the environment variable PGGO_PG_CONFIG sets the default.
package main

import (
	"fmt"
	"os"
)

const usage = `usage: pggo COMMAND [ARGS]

Commands:
  new NAME               create a ready-to-build extension NAME with one worker and a test
  build [DIR]            build the extension in DIR; prints the files, the one to preload last
  run [DIR]              build, start a throwaway PostgreSQL with it preloaded, stream the log (Ctrl-C stops)
  test [DIR]             run the extension's Go tests (they start real servers with package pgtest)
  install [DIR]          build and copy the files into $(pg_config --pkglibdir) (or --destdir)
  package [DIR]          build a tarball of the files with an install note
  init [--pg VERSION]    make PostgreSQL 15, 17 or 18 available to build and test against

Run 'pggo COMMAND -h' for a command's flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"new":     runNew,
		"build":   runBuild,
		"run":     runRun,
		"test":    runTest,
		"install": runInstall,
		"package": runPackage,
		"init":    runInit,
	}
	cmd, ok := cmds[os.Args[1]]
	if !ok {
		if os.Args[1] != "-h" && os.Args[1] != "help" && os.Args[1] != "--help" {
			fmt.Fprintf(os.Stderr, "pggo: unknown command %q\n\n", os.Args[1])
		}
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err := cmd(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
