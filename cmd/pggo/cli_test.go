package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pggo/pggo/pgtest"
)

// pggoBinary builds this command once for the test.
func pggoBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pggo")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func run(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	_, file, _, _ := runtime.Caller(0)
	cmd.Env = append(os.Environ(), "PGGO_SOURCE="+filepath.Join(filepath.Dir(file), "..", ".."))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("pggo %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestNewTestInstallPackageRun walks a new user's path: pggo new, pggo test,
// pggo install --destdir, pggo package (loaded on a second cluster) and
// pggo run stopped with Ctrl-C in a terminal.
func TestNewTestInstallPackageRun(t *testing.T) {
	bin := pggoBinary(t)
	work := t.TempDir()
	os.Chmod(work, 0o755)
	for d := filepath.Dir(work); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // the server (another OS user) reads the built files
	}
	run(t, work, bin, "new", "demo")
	demo := filepath.Join(work, "demo")
	// The scaffold shows the simplified builder; pggo test below proves it works.
	if src, err := os.ReadFile(filepath.Join(demo, "main.go")); err != nil || strings.Contains(string(src), "SetLibrary(") {
		t.Fatalf("the scaffold's main.go should not call SetLibrary (%v):\n%s", err, src)
	}

	t.Run("pggo test", func(t *testing.T) {
		out := run(t, demo, bin, "test")
		if !strings.Contains(out, "ok  \tdemo") {
			t.Fatalf("pggo test output:\n%s", out)
		}
	})

	t.Run("pggo install --destdir", func(t *testing.T) {
		dest := filepath.Join(work, "dest")
		run(t, demo, bin, "install", "--destdir", dest)
		var got []string
		filepath.Walk(dest, func(p string, info os.FileInfo, err error) error {
			if err == nil && !info.IsDir() {
				rel, _ := filepath.Rel(dest, p)
				got = append(got, rel)
			}
			return nil
		})
		lib, _ := pgConfigValue("", "--pkglibdir")
		share, _ := pgConfigValue("", "--sharedir")
		ext := strings.TrimPrefix(share, "/") + "/extension/"
		want := []string{strings.TrimPrefix(lib, "/") + "/demo-go.so", strings.TrimPrefix(lib, "/") + "/demo.so", ext + "demo--1.0.sql", ext + "demo.control"}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("installed %v, want %v", got, want)
		}
	})

	t.Run("pggo package loads on a second cluster", func(t *testing.T) {
		tarball := filepath.Join(work, "demo.tar.gz")
		run(t, demo, bin, "package", "-o", tarball)
		root := filepath.Join(work, "root")
		os.MkdirAll(root, 0o755)
		if out, err := exec.Command("tar", "-xzf", tarball, "-C", root).CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		lib, _ := pgConfigValue("", "--pkglibdir")
		c := pgtest.Start(t, pgtest.Options{Preload: []string{filepath.Join(root, lib, "demo.so")}})
		c.WaitLog(t, regexp.MustCompile(`demo worker started`), 30*time.Second)
		c.AssertNoCrashRecovery(t)
	})

	t.Run("pggo run, Ctrl-C", func(t *testing.T) {
		if _, err := exec.LookPath("tmux"); err != nil {
			t.Skip("tmux is not installed")
		}
		out := filepath.Join(work, "run.out")
		session := "pggo-test-" + filepath.Base(work)
		_, file, _, _ := runtime.Caller(0)
		script := "cd " + demo + " && PGGO_SOURCE=" + filepath.Join(filepath.Dir(file), "..", "..") + " " + bin + " run > " + out + " 2>&1; echo EXIT=$? >> " + out + "; sleep 60"
		if o, err := exec.Command("tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50", script).CombinedOutput(); err != nil {
			t.Fatalf("tmux: %v %s", err, o)
		}
		defer exec.Command("tmux", "kill-session", "-t", session).Run()
		read := func() string { b, _ := os.ReadFile(out); return string(b) }
		pgtest.Eventually(t, 60*time.Second, "the worker's log line in pggo run's output", func() (bool, error) {
			return strings.Contains(read(), "demo worker started"), nil
		})
		pm := regexp.MustCompile(`postmaster pid (\d+)`).FindStringSubmatch(read())
		if o, err := exec.Command("tmux", "send-keys", "-t", session, "C-c").CombinedOutput(); err != nil {
			t.Fatalf("tmux send-keys: %v %s", err, o)
		}
		pgtest.Eventually(t, 30*time.Second, "pggo run to exit", func() (bool, error) {
			return strings.Contains(read(), "EXIT="), nil
		})
		if !strings.Contains(read(), "EXIT=0") || !strings.Contains(read(), "cluster removed") {
			t.Fatalf("pggo run did not stop cleanly:\n%s", read())
		}
		if pm != nil {
			var pid int
			for _, c := range pm[1] {
				pid = pid*10 + int(c-'0')
			}
			if pgtest.ProcessAlive(pid) {
				t.Fatalf("postmaster %d still alive after Ctrl-C", pid)
			}
		}
	})
}

// TestRunLeavesNothing stops pggo run in each way it can be stopped besides a
// terminal's Ctrl-C (above): SIGINT and SIGTERM sent to it alone, SIGPIPE
// from its output piped into a reader that exits, and SIGTERM while it
// builds. Each time the server must be gone and pggo run's temporary
// directory removed (only the template cache pgtest keeps by design stays).
func TestRunLeavesNothing(t *testing.T) {
	bin := pggoBinary(t)
	ext, _ := filepath.Abs("../../internal/testext")
	// TMPDIR holds what pggo run makes; the server's OS user must reach it.
	tmp, err := os.MkdirTemp("", "pggo-run-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755)

	for _, tc := range []struct {
		name     string
		sig      syscall.Signal
		building bool // signal it while it builds, not once the server runs
	}{
		{"SIGINT", syscall.SIGINT, false},
		{"SIGTERM", syscall.SIGTERM, false},
		{"SIGPIPE", syscall.SIGPIPE, false},
		{"SIGTERM while building", syscall.SIGTERM, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Its own TMPDIR, so that what a failed case leaves behind is
			// not blamed on the next one.
			tmp, err := os.MkdirTemp(tmp, "case-")
			if err != nil {
				t.Fatal(err)
			}
			os.Chmod(tmp, 0o755)
			cmd := exec.Command(bin, "run", ext)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			// Our end of its stdout: closed for SIGPIPE, read otherwise.
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout = w
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			defer cmd.Process.Kill()
			drained := make(chan struct{})
			if tc.sig != syscall.SIGPIPE {
				go func() { io.Copy(io.Discard, r); close(drained) }()
			}

			running := regexp.MustCompile(`postmaster pid (\d+)\).\n  connect:  psql -h (\S+) -p (\d+)`)
			var m []string
			var builder int // pggo run's child running the build
			if tc.building {
				pgtest.Eventually(t, 30*time.Second, "pggo run to start the build", func() (bool, error) {
					kids := childPIDs(cmd.Process.Pid)
					if len(kids) > 0 {
						builder = kids[0]
					}
					return builder != 0, nil
				})
				cmd.Process.Signal(tc.sig)
			} else {
				pgtest.Eventually(t, 120*time.Second, "the server to run", func() (bool, error) {
					m = running.FindStringSubmatch(stderr.String())
					return m != nil, nil
				})
				if tc.sig == syscall.SIGPIPE {
					// The reader exits; pggo run gets SIGPIPE at its next
					// write: any server log line, so connect first, since
					// one (a checkpoint, say) may come before the one we
					// raise and start the shutdown.
					conn, err := pgx.Connect(context.Background(), fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres", m[2], m[3]))
					if err != nil {
						t.Fatal(err)
					}
					r.Close()
					_, err = conn.Exec(context.Background(), "DO $$ BEGIN RAISE LOG 'a line for a closed pipe'; END $$")
					conn.Close(context.Background())
					if err != nil {
						// Only a shutdown already under way may refuse it.
						t.Logf("raising the log line: %v", err)
					}
				} else {
					cmd.Process.Signal(tc.sig)
				}
			}
			select {
			case err := <-done:
				t.Logf("pggo run ended: %v\n%s", err, stderr.String())
			case <-time.After(60 * time.Second):
				t.Fatalf("pggo run still running 60 s after %v:\n%s", tc.sig, stderr.String())
			}
			if tc.sig != syscall.SIGPIPE {
				<-drained
			}
			r.Close()
			if m != nil {
				pid, _ := strconv.Atoi(m[1])
				if pgtest.ProcessAlive(pid) {
					t.Errorf("postmaster %d still alive", pid)
				}
				if _, err := os.Stat(m[2]); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("socket directory %s left behind (%v)", m[2], err)
				}
			}
			if builder != 0 {
				// go build and what it started (its process group) are gone,
				// so nothing writes into the removed directory later.
				pgtest.Eventually(t, 10*time.Second, "the build's processes to exit", func() (bool, error) {
					return len(groupPIDs(builder)) == 0, nil
				})
			}
			entries, _ := os.ReadDir(tmp)
			for _, e := range entries {
				if !strings.HasPrefix(e.Name(), "pgtest-cache-") {
					t.Errorf("left behind in TMPDIR: %s", e.Name())
				}
			}
			shm, _ := filepath.Glob(fmt.Sprintf("/dev/shm/pgtest-%d-*", cmd.Process.Pid))
			if len(shm) > 0 {
				t.Errorf("left behind in /dev/shm: %v", shm)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer written by a child's stderr copier and
// read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// childPIDs lists the live child processes of pid, from /proc.
func childPIDs(pid int) []int {
	return procScan(func(f []string) bool { return f[1] == strconv.Itoa(pid) })
}

// groupPIDs lists the live processes of process group pgid, from /proc.
func groupPIDs(pgid int) []int {
	return procScan(func(f []string) bool { return f[2] == strconv.Itoa(pgid) })
}

// procScan returns the pids whose /proc/PID/stat fields after the command
// (state, ppid, pgrp, ...) match, zombies excluded.
func procScan(match func(fields []string) bool) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')') // the command may contain spaces
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || !match(f) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(st))); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
