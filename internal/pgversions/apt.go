package pgversions

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// MirrorEnv names an environment variable that, when set, is the Debian
// archive URI to fetch headers from instead of the one the system's apt
// sources use.
const MirrorEnv = "PGGO_DEBIAN_MIRROR"

// defaultKeyring verifies Debian's suites when the system's source entry
// names none; bookworm's debian-archive-keyring holds the keys that sign
// trixie and sid too.
const defaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// aptSource is one entry of the system's apt sources, in either format.
type aptSource struct {
	Types      []string
	URIs       []string
	Suites     []string
	Components []string
	SignedBy   string // a keyring file, or "" (none, or an inline key)
}

// parseOneLineSources parses the classic sources.list format:
// "deb [opt=value ...] URI SUITE COMPONENT...".
func parseOneLineSources(text string) []aptSource {
	var out []aptSource
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 3 || (f[0] != "deb" && f[0] != "deb-src") {
			continue
		}
		s := aptSource{Types: []string{f[0]}}
		rest := f[1:]
		if strings.HasPrefix(rest[0], "[") {
			// Options may be written "[a=b c=d]" or "[ a=b ]".
			var opts []string
			for len(rest) > 0 {
				tok := rest[0]
				rest = rest[1:]
				end := strings.HasSuffix(tok, "]")
				tok = strings.TrimSuffix(strings.TrimPrefix(tok, "["), "]")
				if tok != "" {
					opts = append(opts, tok)
				}
				if end {
					break
				}
			}
			for _, o := range opts {
				if k, v, ok := strings.Cut(o, "="); ok && strings.EqualFold(k, "signed-by") {
					s.SignedBy = keyringPath(v)
				}
			}
		}
		if len(rest) < 2 {
			continue
		}
		s.URIs = []string{rest[0]}
		s.Suites = []string{rest[1]}
		s.Components = rest[2:]
		out = append(out, s)
	}
	return out
}

// parseDeb822Sources parses the deb822 format of *.sources files:
// paragraphs of "Field: value" lines, continuation lines indented.
func parseDeb822Sources(text string) []aptSource {
	var out []aptSource
	fields := map[string]string{}
	last := ""
	flush := func() {
		if len(fields) > 0 && !strings.EqualFold(strings.TrimSpace(fields["enabled"]), "no") {
			s := aptSource{
				Types:      strings.Fields(fields["types"]),
				URIs:       strings.Fields(fields["uris"]),
				Suites:     strings.Fields(fields["suites"]),
				Components: strings.Fields(fields["components"]),
			}
			if sb := strings.TrimSpace(fields["signed-by"]); !strings.Contains(sb, "\n") {
				s.SignedBy = keyringPath(sb)
			}
			if len(s.Types) > 0 && len(s.URIs) > 0 {
				out = append(out, s)
			}
		}
		fields = map[string]string{}
		last = ""
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				fields[last] += "\n" + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	flush()
	return out
}

// keyringPath keeps a Signed-By value that names a keyring file; a
// fingerprint list or an inline key cannot be handed on, so it yields "".
func keyringPath(v string) string {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "/") && !strings.ContainsAny(v, " \n,") {
		return v
	}
	return ""
}

// pickMirror chooses the source entry of Debian's main archive among the
// system's: a "deb" entry with component main whose suite is the system's
// codename, else one whose suite is at least not the security archive
// (which lives at a different URI and holds only the stable suites).
func pickMirror(srcs []aptSource, codename string) (aptSource, bool) {
	ok := func(s aptSource, exact bool) bool {
		if !contains(s.Types, "deb") || !contains(s.Components, "main") || len(s.URIs) == 0 {
			return false
		}
		for _, suite := range s.Suites {
			if exact && suite == codename {
				return true
			}
			if !exact && !strings.Contains(suite, "security") && !strings.HasSuffix(s.URIs[0], "-security") {
				return true
			}
		}
		return false
	}
	for _, exact := range []bool{true, false} {
		if exact && codename == "" {
			continue
		}
		for _, s := range srcs {
			if ok(s, exact) {
				return s, true
			}
		}
	}
	return aptSource{}, false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// osCodename reads VERSION_CODENAME from /etc/os-release.
func osCodename() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VERSION_CODENAME="); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return ""
}

// systemMirror returns the URI of the Debian archive the system's apt uses
// and the keyring that verifies it. Reusing it, rather than naming an
// archive host here, keeps whatever mirror or proxy the machine is set up
// with.
func systemMirror() (uri, keyring string, err error) {
	keyring = defaultKeyring
	if m := os.Getenv(MirrorEnv); m != "" {
		return m, keyring, nil
	}
	var srcs []aptSource
	if b, err := os.ReadFile("/etc/apt/sources.list"); err == nil {
		srcs = append(srcs, parseOneLineSources(string(b))...)
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range lists {
		if b, err := os.ReadFile(f); err == nil {
			srcs = append(srcs, parseOneLineSources(string(b))...)
		}
	}
	d822, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range d822 {
		if b, err := os.ReadFile(f); err == nil {
			srcs = append(srcs, parseDeb822Sources(string(b))...)
		}
	}
	s, ok := pickMirror(srcs, osCodename())
	if !ok {
		return "", "", fmt.Errorf("pgversions: found no Debian archive in the system's apt sources; set %s to its URI", MirrorEnv)
	}
	if s.SignedBy != "" {
		keyring = s.SignedBy
	}
	return s.URIs[0], keyring, nil
}

// debArch is Debian's name for this machine's architecture.
func debArch() string {
	return runtime.GOARCH // amd64 and arm64 are spelled the same
}

// headerInfo is what installHeaders unpacked.
type headerInfo struct {
	pkg, debVersion, serverDir string
	versionNum                 int // PG_VERSION_NUM of the headers
}

// installHeaders puts the server headers of postgresql-server-dev-<major>
// into root/include/server, from the cached .deb or from Debian's archive.
// The package is unpacked, never installed: its dependencies (a newer
// libc, the newer server) are neither needed for headers nor installable
// here.
func (in *installer) installHeaders(ctx context.Context) (*headerInfo, error) {
	pkg := fmt.Sprintf("postgresql-server-dev-%d", in.major)
	dl := filepath.Join(in.root, downloadsDir)
	pattern := filepath.Join(dl, pkg+"_*_"+debArch()+".deb")
	debs, _ := filepath.Glob(pattern)
	var deb string
	if len(debs) > 0 {
		deb = debs[len(debs)-1]
		in.logf("server headers: cached %s (%s)", deb, byteSize(fileSize(deb)))
	} else {
		var err error
		if deb, err = in.aptDownload(ctx, debianSuites[in.major], pkg, dl); err != nil {
			return nil, err
		}
	}
	hi, err := in.unpackHeaders(ctx, deb, pkg)
	if err != nil {
		os.Remove(deb) // do not keep a damaged download
		return nil, err
	}
	return hi, nil
}

// aptDownload fetches pkg from suite with apt-get, using a private sources
// list, package lists and cache under root/apt, so the system's apt state
// is neither read for candidates nor changed.
func (in *installer) aptDownload(ctx context.Context, suite, pkg, dest string) (string, error) {
	uri, keyring, err := systemMirror()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(in.root, aptDir)
	for _, d := range []string{"sources.list.d", "preferences.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", fmt.Errorf("pgversions: %w", err)
		}
	}
	// Only the Packages index: the DEP-11 metadata and translations a
	// default setup would also fetch are as large and of no use here.
	line := fmt.Sprintf("deb [target=Packages arch=%s signed-by=%s] %s %s main\n", debArch(), keyring, uri, suite)
	if err := os.WriteFile(filepath.Join(dir, "sources.list"), []byte(line), 0o644); err != nil {
		return "", fmt.Errorf("pgversions: %w", err)
	}
	for _, f := range []string{"status", "preferences"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			return "", fmt.Errorf("pgversions: %w", err)
		}
	}
	opts := aptOptions(dir)
	in.logf("server headers: apt-get update (private list: %s %s main)", uri, suite)
	t := time.Now()
	if _, err := run(ctx, dir, "apt-get", append(opts, "update")...); err != nil {
		return "", err
	}
	in.logf("server headers: package list of %s fetched in %s", suite, time.Since(t).Round(100*time.Millisecond))
	tmp, err := os.MkdirTemp(dest, ".apt-")
	if err != nil {
		return "", fmt.Errorf("pgversions: %w", err)
	}
	defer os.RemoveAll(tmp)
	t = time.Now()
	if _, err := run(ctx, tmp, "apt-get", append(opts, "download", pkg)...); err != nil {
		return "", err
	}
	got, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(got) != 1 {
		return "", fmt.Errorf("pgversions: apt-get download %s produced %d files", pkg, len(got))
	}
	deb := filepath.Join(dest, filepath.Base(got[0]))
	if err := os.Rename(got[0], deb); err != nil {
		return "", fmt.Errorf("pgversions: %w", err)
	}
	in.logf("server headers: downloaded %s (%s) in %s", filepath.Base(deb), byteSize(fileSize(deb)), time.Since(t).Round(100*time.Millisecond))
	// The package lists (about 20 MB) served this one download, whose
	// result is cached; a later download fetches fresh ones anyway.
	os.RemoveAll(filepath.Join(dir, "lists"))
	os.RemoveAll(filepath.Join(dir, "cache"))
	return deb, nil
}

// aptOptions points apt-get at the private state in dir.
func aptOptions(dir string) []string {
	opts := []string{
		"-q",
		"-o", "Dir::Etc::SourceList=" + filepath.Join(dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(dir, "sources.list.d"),
		"-o", "Dir::Etc::Preferences=" + filepath.Join(dir, "preferences"),
		"-o", "Dir::Etc::PreferencesParts=" + filepath.Join(dir, "preferences.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::State::status=" + filepath.Join(dir, "status"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "APT::Architectures=" + debArch(),
		"-o", "Acquire::Languages=none",
		// Our own lock (lockDir) serializes installs; apt's would also
		// wait for an unrelated apt run on the system.
		"-o", "Debug::NoLocking=1",
	}
	if os.Geteuid() == 0 {
		// As root apt downloads as the _apt user, who cannot write under
		// a root-only home directory.
		opts = append(opts, "-o", "APT::Sandbox::User=root")
	}
	return opts
}

var (
	pgMajorRE   = regexp.MustCompile(`(?m)^#define PG_MAJORVERSION_NUM (\d+)`)
	pgVersionRE = regexp.MustCompile(`(?m)^#define PG_VERSION "([^"]*)"`)
	pgNumRE     = regexp.MustCompile(`(?m)^#define PG_VERSION_NUM (\d+)`)
)

// unpackHeaders extracts deb (dpkg -x) and moves its server include
// directory to root/include/server.
func (in *installer) unpackHeaders(ctx context.Context, deb, pkg string) (*headerInfo, error) {
	out, err := run(ctx, in.root, "dpkg-deb", "-f", deb, "Version")
	if err != nil {
		return nil, err
	}
	version := strings.TrimSpace(string(out))
	tmp, err := os.MkdirTemp(in.root, ".unpack-")
	if err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, tmp, "dpkg", "-x", deb, tmp); err != nil {
		return nil, err
	}
	src := filepath.Join(tmp, "usr", "include", "postgresql", fmt.Sprint(in.major), "server")
	cfg, err := os.ReadFile(filepath.Join(src, "pg_config.h"))
	if err != nil {
		return nil, fmt.Errorf("pgversions: %s holds no server headers for %d: %w", deb, in.major, err)
	}
	if m := pgMajorRE.FindSubmatch(cfg); m == nil || string(m[1]) != fmt.Sprint(in.major) {
		return nil, fmt.Errorf("pgversions: %s: pg_config.h is not PostgreSQL %d's", deb, in.major)
	}
	inc := filepath.Join(in.root, "include")
	if err := os.MkdirAll(inc, 0o755); err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	dst := filepath.Join(inc, "server")
	os.RemoveAll(dst)
	if err := os.Rename(src, dst); err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	fixed, err := fixLibcDecls(ctx, filepath.Join(dst, "pg_config.h"), libcDecls)
	if err != nil {
		return nil, err
	}
	for _, fn := range fixed {
		in.logf("server headers: this machine's C library does not declare %s(): pg_config.h now says so (the server provides its own)", fn)
	}
	hv := version
	if m := pgVersionRE.FindSubmatch(cfg); m != nil {
		hv = string(m[1])
	}
	in.logf("server headers: PostgreSQL %s in %s", hv, dst)
	hi := &headerInfo{pkg: pkg, debVersion: version, serverDir: dst}
	if m := pgNumRE.FindSubmatch(cfg); m != nil {
		hi.versionNum, _ = strconv.Atoi(string(m[1]))
	}
	return hi, nil
}

// libcDecls are the functions whose HAVE_DECL_ macro in pg_config.h tells
// port.h whether the C library declares them or PostgreSQL must. Debian's
// headers of newer suites describe a newer C library than this machine's:
// trixie's glibc 2.41 declares strlcpy and strlcat, bookworm's 2.36 does
// not, and a module would then call them undeclared. The npm servers,
// built against an old glibc, carry PostgreSQL's own copies.
var libcDecls = []string{"strlcat", "strlcpy", "strsep", "strchrnul", "strnlen", "timingsafe_bcmp", "memset_s", "explicit_bzero"}

// fixLibcDecls sets HAVE_DECL_<F> to 0 in the pg_config.h at path for each
// function F of funcs it declares present but this machine's C library
// headers do not declare, and returns those functions. Without a C
// compiler nothing can be checked or built, so nothing changes.
func fixLibcDecls(ctx context.Context, path string, funcs []string) ([]string, error) {
	if _, err := exec.LookPath("cc"); err != nil {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	var fixed []string
	for _, fn := range funcs {
		line := []byte("#define HAVE_DECL_" + strings.ToUpper(fn) + " 1\n")
		if !bytes.Contains(b, line) || libcDeclares(ctx, fn) {
			continue
		}
		b = bytes.ReplaceAll(b, line, []byte("#define HAVE_DECL_"+strings.ToUpper(fn)+" 0 /* pggo: not declared by this machine's C library */\n"))
		fixed = append(fixed, fn)
	}
	if len(fixed) == 0 {
		return nil, nil
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	return fixed, nil
}

// libcDeclares reports whether the C library's headers declare fn, with
// the feature macros PostgreSQL compiles with.
func libcDeclares(ctx context.Context, fn string) bool {
	src := "#include <stdlib.h>\n#include <string.h>\n#include <strings.h>\n" +
		"void *pggo_probe(void);\nvoid *pggo_probe(void) { return (void *) &" + fn + "; }\n"
	cmd := exec.CommandContext(ctx, "cc", pgCPPFlags, "-fsyntax-only", "-x", "c", "-")
	cmd.Stdin = strings.NewReader(src)
	return cmd.Run() == nil
}
