// Command pggo builds, runs, tests and packages pggo extensions: Go main
// packages that PostgreSQL runs as background workers.
//
//	pggo new NAME                  a ready-to-build extension with one worker and a test
//	pggo build [PACKAGE_DIR]       build; prints the files, the one to preload last
//	pggo run [PACKAGE_DIR]         build, start a throwaway server with it preloaded, stream its log
//	pggo test [PACKAGE_DIR] [go test flags]  go test, against a real server (package pgtest)
//	pggo install [PACKAGE_DIR]     copy the files into PostgreSQL's library and extension directories
//	pggo package [PACKAGE_DIR]     a tarball to install elsewhere
//	pggo init [--pg VERSION]       make PostgreSQL 15, 17 or 18 available to build against
//	pggo help [COMMAND]            this list, or a command's flags
//
// Every command takes -pg-config PATH to target another PostgreSQL (pggo init
// prints it); the environment variable PGGO_PG_CONFIG sets the default.
// Help (pggo help CMD, pggo CMD -h or --help) goes to stdout and exits 0; a
// bad flag or argument prints a usage line and exits 2; a failure exits 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

const usage = `usage: pggo COMMAND [ARGS]

Commands:
  new NAME               create a ready-to-build extension NAME with one worker and a test
  build [DIR]            build the extension in DIR; prints the files, the one to preload last
  run [DIR]              build, start a throwaway PostgreSQL with it preloaded, stream the log (Ctrl-C stops)
  test [DIR] [FLAGS]     run the extension's Go tests (they start real servers with package pgtest);
                         FLAGS go to go test (-v, -run X, -count=N, ...)
  install [DIR]          build and copy the files into $(pg_config --pkglibdir) and
                         $(pg_config --sharedir)/extension (or under --destdir)
  package [DIR]          build a tarball of the files with an install note
  init [--pg VERSION]    make PostgreSQL 15, 17 or 18 available to build and test against
  help [COMMAND]         this list, or a command's help

Run 'pggo help COMMAND' (or 'pggo COMMAND -h') for a command's flags.
`

// errHelp reports that help was asked for and printed: exit 0.
var errHelp = errors.New("help requested")

// usageError is a bad command line: its message and a usage line were
// printed (by parseFlags), the exit status is 2 as for flag.ExitOnError.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// exitError carries a child's exit status through (pggo test exits as go
// test did, so scripts see 1 for failed tests and 2 for a bad flag).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

var commands map[string]func([]string) error

func init() {
	// Set in init: runHelp refers to commands itself.
	commands = map[string]func([]string) error{
		"new":     runNew,
		"build":   runBuild,
		"run":     runRun,
		"test":    runTest,
		"install": runInstall,
		"package": runPackage,
		"init":    runInit,
		"help":    runHelp,
	}
}

func main() {
	os.Exit(mainStatus(os.Args[1:], os.Stdout, os.Stderr))
}

// mainStatus runs one command line and returns the exit status.
func mainStatus(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pggo: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd(args[1:])
	var ue usageError
	var ee exitError
	var xe *exec.ExitError
	switch {
	case err == nil, errors.Is(err, errHelp):
		return 0
	case errors.As(err, &ue):
		return 2
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &xe) && xe.ExitCode() > 0:
		fmt.Fprintln(stderr, err)
		return xe.ExitCode()
	default:
		fmt.Fprintln(stderr, err)
		return 1
	}
}

// runHelp implements `pggo help [COMMAND]`: COMMAND's help is what
// `pggo COMMAND -h` prints.
func runHelp(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stdout, usage)
		return nil
	}
	if len(args) > 1 {
		fmt.Fprint(os.Stderr, "usage: pggo help [COMMAND]\n")
		return usageError{"pggo help: one command at most"}
	}
	cmd, ok := commands[args[0]]
	if !ok || args[0] == "help" {
		fmt.Fprintf(os.Stderr, "pggo help: unknown command %q\n\n%s", args[0], usage)
		return usageError{"unknown command"}
	}
	return cmd([]string{"-h"})
}

// parseFlags parses a command's flags the same way for every command:
// -h/-help/--help print help (the usage text and the flags) to stdout and
// return errHelp; a bad flag prints the error and the usage text's first
// line to stderr and returns a usageError.
func parseFlags(fs *flag.FlagSet, args []string, help string) error {
	fs.Usage = func() {}
	fs.SetOutput(io.Discard) // flag's own messages: parseFlags prints its own
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(fs, help)
			return errHelp
		}
		return badUsage(fs, help, err.Error())
	}
	return nil
}

// printHelp writes a command's help to stdout.
func printHelp(fs *flag.FlagSet, help string) {
	fmt.Fprint(os.Stdout, help)
	has := false
	fs.VisitAll(func(*flag.Flag) { has = true })
	if has {
		fmt.Fprintln(os.Stdout, "\nFlags:")
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// badUsage prints msg and the usage line and returns the usageError.
func badUsage(fs *flag.FlagSet, help, msg string) error {
	line, _, _ := strings.Cut(help, "\n")
	fmt.Fprintf(os.Stderr, "pggo %s: %s\n%s\nRun 'pggo help %s' for details.\n", fs.Name(), msg, line, fs.Name())
	return usageError{msg}
}
