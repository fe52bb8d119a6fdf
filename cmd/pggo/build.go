package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/pggo/pggo/internal/build"
)

// buildFlags are the flags every building command shares.
type buildFlags struct {
	out, name, pgConfig, version *string
	verbose                      *bool
}

func addBuildFlags(fs *flag.FlagSet, withOut bool) buildFlags {
	b := buildFlags{
		name:     fs.String("name", "", "library name (default: the package directory's name)"),
		pgConfig: fs.String("pg-config", os.Getenv("PGGO_PG_CONFIG"), "pg_config of the target PostgreSQL (default: $PGGO_PG_CONFIG, else pg_config on PATH)"),
		verbose:  fs.Bool("v", false, "print progress to stderr"),
		version:  fs.String("version", "", "the extension's version: default_version in NAME.control, the install script NAME--VERSION.sql (default: the source's //pggo:version directive, else "+build.DefaultVersion+")"),
	}
	if withOut {
		b.out = fs.String("o", "", "output directory (default PACKAGE_DIR/build)")
	}
	return b
}

func (b buildFlags) build(dir, out string) (*build.Result, error) {
	return b.buildContext(context.Background(), dir, out)
}

// buildContext is build, stopped (its compilers killed) when ctx ends.
func (b buildFlags) buildContext(ctx context.Context, dir, out string) (*build.Result, error) {
	opts := build.Options{Dir: dir, Out: out, Name: *b.name, PGConfig: *b.pgConfig, Version: *b.version}
	if *b.verbose {
		opts.Log = os.Stderr
	}
	return build.Build(ctx, opts)
}

// parse parses a command's flags (parseFlags) and its one optional
// positional argument.
func parse(fs *flag.FlagSet, args []string, usage string) (dir string, err error) {
	if err := parseFlags(fs, args, usage); err != nil {
		return "", err
	}
	if fs.NArg() > 1 {
		return "", badUsage(fs, usage, fmt.Sprintf("unexpected argument %q (flags go before the directory)", fs.Arg(1)))
	}
	return fs.Arg(0), nil
}

func runBuild(args []string) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	bf := addBuildFlags(fs, true)
	dir, err := parse(fs, args, `usage: pggo build [flags] [PACKAGE_DIR]

Builds the pggo extension in PACKAGE_DIR (default: the current directory)
and prints the absolute paths of the two files PostgreSQL loads; the last
one is the library to put in shared_preload_libraries. Next to them it
writes NAME.sql (its SQL functions, package fmgr, for psql -f) and the
files of CREATE EXTENSION NAME: NAME.control, NAME--VERSION.sql and the
upgrade scripts PACKAGE_DIR/sql/NAME--FROM--TO.sql (for ALTER EXTENSION
NAME UPDATE), copied. Every SQL function is revoked from PUBLIC.
`)
	if err != nil {
		return err
	}
	res, err := bf.build(dir, *bf.out)
	if err != nil {
		return err
	}
	if len(res.Exports.SQL) > 0 {
		fmt.Fprintf(os.Stderr, "pggo build: %d SQL function(s): create them with psql -f %s\n", len(res.Exports.SQL), res.SQLFile)
	}
	fmt.Println(res.GoLibrary)
	fmt.Println(res.Loader)
	return nil
}
