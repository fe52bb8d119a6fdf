package pgtest

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pggo/pggo/internal/build"
)

// A private installation lets a test cluster CREATE EXTENSION without
// writing into the system's PostgreSQL directories. PostgreSQL 15 and 17
// read extension control files from one directory only, SHAREDIR/extension,
// and 18's extension_control_path is not there on 15/17. But the server
// does not use the compiled-in SHAREDIR and PKGLIBDIR as such: it finds
// its own executable (find_my_exec, symlinks resolved) and, when the
// compiled-in BINDIR and SHAREDIR share a leading directory, takes SHAREDIR
// relative to where it runs (get_share_path / make_relative_path in
// src/port/path.c; the same for $libdir, get_pkglib_path). That is how
// relocatable builds work, and Debian's layout allows it:
// /usr/lib/postgresql/15/bin and /usr/share/postgresql/15 share "/usr/", so
// a postgres at T/lib/postgresql/15/bin/postgres reads
// T/share/postgresql/15/extension and T/lib/postgresql/15/lib.
//
// So pgtest builds T: a tree mirroring the installation from that common
// directory down, every file a symlink to the original, except postgres
// and pg_ctl, which are copies (a hard link when possible) because a
// symlink would be resolved back to the system's directory (pg_ctl finds
// postgres next to itself the same way), and the directories leading to
// BINDIR, SHAREDIR/extension and PKGLIBDIR, which are real directories so
// the extension's files can be added to them as symlinks. Whatever else the
// server reads relative to itself (timezone sets, locale data, the
// libraries a relocatable build's RUNPATH $ORIGIN/../lib names) is reached
// through the mirror's symlinks.

// installLayout is what pg_config says about the installation in bin.
type installLayout struct{ bin, share, pkglib string }

func layoutOf(bin string) (installLayout, error) {
	pgc := filepath.Join(bin, "pg_config")
	if _, err := os.Stat(pgc); err != nil {
		pgc = build.DefaultPGConfig()
	}
	out, err := exec.Command(pgc, "--bindir", "--sharedir", "--pkglibdir").Output()
	if err != nil {
		return installLayout{}, fmt.Errorf("pgtest: %s: %v", pgc, err)
	}
	f := strings.Fields(string(out))
	if len(f) != 3 {
		return installLayout{}, fmt.Errorf("pgtest: %s printed %q", pgc, out)
	}
	l := installLayout{bin: filepath.Clean(bin), share: filepath.Clean(f[1]), pkglib: filepath.Clean(f[2])}
	if filepath.Clean(f[0]) != l.bin {
		return installLayout{}, fmt.Errorf("pgtest: %s reports bindir %s, not %s: cannot tell where this PostgreSQL's share directory is", pgc, f[0], bin)
	}
	return l, nil
}

// commonDir is the longest directory both paths are under.
func commonDir(a, b string) string {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	n := 0
	for n < len(as) && n < len(bs) && as[n] == bs[n] {
		n++
	}
	return strings.Join(as[:n], "/")
}

// privateInstall makes the private installation for exts under dir and
// returns its bin directory (for pg_ctl and postgres).
func privateInstall(bin, dir string, exts []*Extension) (string, error) {
	l, err := layoutOf(bin)
	if err != nil {
		return "", err
	}
	root := commonDir(commonDir(l.bin, l.share), l.pkglib)
	if root == "" || root == "/" {
		return "", fmt.Errorf("pgtest: %s, %s and %s share no directory: this PostgreSQL finds its share directory only at its compiled-in path, so a test cluster cannot install extensions privately", l.bin, l.share, l.pkglib)
	}
	rel := func(p string) string { r, _ := filepath.Rel(root, p); return r }
	binRel, extRel, libRel := rel(l.bin), filepath.Join(rel(l.share), "extension"), rel(l.pkglib)
	// The real directories: the three and every directory above them.
	real := map[string]bool{".": true}
	for _, p := range []string{binRel, extRel, libRel} {
		for ; p != "." && p != "/"; p = filepath.Dir(p) {
			real[p] = true
		}
	}
	// What the three get besides the mirror's symlinks.
	copies := map[string]string{filepath.Join(binRel, "postgres"): filepath.Join(l.bin, "postgres"), filepath.Join(binRel, "pg_ctl"): filepath.Join(l.bin, "pg_ctl")}
	links := map[string]string{}
	for _, e := range exts {
		for _, f := range append([]string{e.ControlFile}, e.Scripts...) {
			if f != "" {
				links[filepath.Join(extRel, filepath.Base(f))] = f
			}
		}
		for _, f := range []string{e.Loader, e.GoLibrary} {
			if f != "" {
				links[filepath.Join(libRel, filepath.Base(f))] = f
			}
		}
	}
	for _, d := range slices.Sorted(func(yield func(string) bool) {
		for d := range real {
			if !yield(d) {
				return
			}
		}
	}) {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", fmt.Errorf("pgtest: %w", err)
		}
		entries, err := os.ReadDir(filepath.Join(root, d))
		if err != nil && !(os.IsNotExist(err) && d == extRel) {
			return "", fmt.Errorf("pgtest: %w", err)
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if real[p] || copies[p] != "" || links[p] != "" {
				continue
			}
			if err := os.Symlink(filepath.Join(root, p), filepath.Join(dir, p)); err != nil {
				return "", fmt.Errorf("pgtest: %w", err)
			}
		}
	}
	for p, src := range copies {
		if err := linkOrCopy(src, filepath.Join(dir, p)); err != nil {
			return "", err
		}
	}
	for p, src := range links {
		if err := os.Symlink(src, filepath.Join(dir, p)); err != nil {
			return "", fmt.Errorf("pgtest: %w", err)
		}
	}
	return filepath.Join(dir, binRel), nil
}

// linkOrCopy hard-links src to dst, or copies it (another file system, or
// protected_hardlinks refusing a file we do not own).
func linkOrCopy(src, dst string) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("pgtest: copying %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}
