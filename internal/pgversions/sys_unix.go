//go:build unix

package pgversions

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// serverUser says whom PostgreSQL's programs run as: the postgres OS user
// when we are root (initdb and postgres refuse root), else ourselves.
type serverUser struct {
	cred *syscall.Credential // nil: ourselves
	home string
}

func lookupServerUser() (*serverUser, error) {
	if os.Geteuid() != 0 {
		return &serverUser{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgversions: running as root needs a \"postgres\" OS user to run the server (Debian's postgresql packages create it): %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &serverUser{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, home: u.HomeDir}, nil
}

// switches reports whether the server runs as another user than us.
func (u *serverUser) switches() bool { return u.cred != nil }

func (u *serverUser) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = os.Environ()
	if u.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
		cmd.Env = append(cmd.Env, "HOME="+u.home, "USER=postgres", "LOGNAME=postgres")
	}
	// pg_ctl leaves the postmaster running with our pipes closed; this only
	// guards against a hang if something holds them anyway.
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// own hands path to the server's user.
func (u *serverUser) own(path string) error {
	if u.cred != nil {
		if err := os.Chown(path, int(u.cred.Uid), int(u.cred.Gid)); err != nil {
			return fmt.Errorf("pgversions: %w", err)
		}
	}
	return nil
}

// grantTraverse lets the postgres user reach path: every directory above
// it that others may not enter (a 0700 /root is the usual one) gets the
// search bit for others, and only that bit, so nothing becomes listable.
func (in *installer) grantTraverse(path string) error {
	su, err := lookupServerUser()
	if err != nil || su.cred == nil {
		return err
	}
	for dir := path; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pgversions: %w", err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		reachable := fi.Mode().Perm()&0o001 != 0 ||
			st != nil && st.Uid == su.cred.Uid && fi.Mode().Perm()&0o100 != 0 ||
			st != nil && st.Gid == su.cred.Gid && fi.Mode().Perm()&0o010 != 0
		if !reachable {
			if err := os.Chmod(dir, fi.Mode().Perm()|0o001); err != nil {
				return fmt.Errorf("pgversions: letting the postgres user reach %s: %w", path, err)
			}
			in.logf("granted others search permission (o+x) on %s so the postgres user can reach %s", dir, path)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}
