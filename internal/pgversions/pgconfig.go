package pgversions

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Compiler flags the generated pg_config reports. They are what Debian's
// own pg_config reports on bookworm for PostgreSQL 15 (the -I for libxml2
// and the hardening flags aside), so a loader builds with the same warnings
// against every version, and gcc 12 accepts them all; newer PostgreSQL
// releases add warning flags only newer compilers know.
const (
	pgCPPFlags = "-D_GNU_SOURCE"
	pgCFlags   = "-Wall -Wmissing-prototypes -Wpointer-arith -Wdeclaration-after-statement -Werror=vla " +
		"-Wendif-labels -Wmissing-format-attribute -Wimplicit-fallthrough=3 -Wcast-function-type " +
		"-Wformat-security -fno-strict-aliasing -fwrapv -fexcess-precision=standard " +
		"-Wno-format-truncation -Wno-stringop-truncation -g -O2"
	pgCFlagsSL = "-fPIC"
	pgLDFlags  = "-Wl,--as-needed"
)

// pgConfigValues are the facts the generated pg_config reports.
type pgConfigValues struct {
	Version          string // "17.10"
	Root             string // holds bin, lib, share, include
	IncludeServerDir string
	Source           string // for the script's comment
}

// pgConfigFlags returns pg_config's options and answers, in the order
// pg_config without arguments prints them.
func pgConfigFlags(v pgConfigValues) [][2]string {
	return [][2]string{
		{"bindir", filepath.Join(v.Root, "bin")},
		{"includedir", filepath.Join(v.Root, "include")},
		{"pkgincludedir", filepath.Join(v.Root, "include")},
		{"includedir-server", v.IncludeServerDir},
		{"libdir", filepath.Join(v.Root, "lib")},
		{"pkglibdir", filepath.Join(v.Root, "lib", "postgresql")},
		{"sharedir", filepath.Join(v.Root, "share", "postgresql")},
		{"cc", "cc"},
		{"cppflags", pgCPPFlags},
		{"cflags", pgCFlags},
		{"cflags_sl", pgCFlagsSL},
		{"ldflags", pgLDFlags},
		{"ldflags_sl", ""},
		{"version", "PostgreSQL " + v.Version},
	}
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// pgConfigScript renders a POSIX shell pg_config for an assembled tree. It
// answers like the real one: each requested value on its own line, all of
// them as "NAME = value" without arguments, and exit status 1 for an
// unknown option. Paths are absolute: the tree is not meant to move (Find
// notices when it did).
func pgConfigScript(v pgConfigValues) string {
	flags := pgConfigFlags(v)
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	b.WriteString("# pg_config for PostgreSQL " + v.Version + " as assembled by `pggo init`.\n")
	b.WriteString("# " + strings.ReplaceAll(v.Source, "\n", " ") + "\n")
	b.WriteString("# Neither source ships a pg_config for this combination; this one\n")
	b.WriteString("# answers what building an extension against it needs. Generated: do not edit.\n")
	b.WriteString("if [ $# -eq 0 ]; then\n")
	for _, f := range flags {
		fmt.Fprintf(&b, "\techo %s\n", shellQuote(strings.ToUpper(strings.ReplaceAll(f[0], "-", "_"))+" = "+f[1]))
	}
	b.WriteString("\texit 0\nfi\n")
	b.WriteString("for arg in \"$@\"; do\n\tcase \"$arg\" in\n")
	for _, f := range flags {
		fmt.Fprintf(&b, "\t--%s) echo %s ;;\n", f[0], shellQuote(f[1]))
	}
	b.WriteString("\t--help|-\\?)\n")
	b.WriteString("\t\techo \"usage: pg_config [OPTION]...; options:\"\n")
	for _, f := range flags {
		fmt.Fprintf(&b, "\t\techo '  --%s'\n", f[0])
	}
	b.WriteString("\t\texit 0 ;;\n")
	b.WriteString("\t*)\n\t\techo \"pg_config: invalid argument: $arg\" >&2\n")
	b.WriteString("\t\techo 'Try \"pg_config --help\" for more information.' >&2\n")
	b.WriteString("\t\texit 1 ;;\n\tesac\ndone\n")
	return b.String()
}
