// Command pggo builds pggo extensions: Go main packages that PostgreSQL runs
// as background workers.
//
//	pggo build [-o DIR] [-name NAME] [-pg-config PATH] [PACKAGE_DIR]
//
// prints the absolute paths of the built files, the one to put in
// shared_preload_libraries last.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/pggo/pggo/internal/build"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage: pggo build [-o DIR] [-name NAME] [-pg-config PATH] [PACKAGE_DIR]

Builds the pggo extension in PACKAGE_DIR (default: the current directory) and
prints the absolute paths of the two files PostgreSQL loads; the last one is
the library to put in shared_preload_libraries.
`)
}

func main() {
	if len(os.Args) < 2 || os.Args[1] != "build" {
		usage()
		os.Exit(2)
	}
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	fs.Usage = usage
	out := fs.String("o", "", "output directory (default PACKAGE_DIR/build)")
	name := fs.String("name", "", "library name (default: the package directory's name)")
	pgConfig := fs.String("pg-config", "", "pg_config of the target PostgreSQL (default: pg_config on PATH)")
	verbose := fs.Bool("v", false, "print progress to stderr")
	fs.Parse(os.Args[2:])
	if fs.NArg() > 1 {
		usage()
		os.Exit(2)
	}
	opts := build.Options{Dir: fs.Arg(0), Out: *out, Name: *name, PGConfig: *pgConfig}
	if *verbose {
		opts.Log = os.Stderr
	}
	res, err := build.Build(context.Background(), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(res.Exports.SQL) > 0 {
		fmt.Fprintf(os.Stderr, "pggo build: %d SQL function(s): create them with psql -f %s\n", len(res.Exports.SQL), res.SQLFile)
	}
	fmt.Println(res.GoLibrary)
	fmt.Println(res.Loader)
}
