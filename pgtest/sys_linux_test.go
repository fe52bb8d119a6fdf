package pgtest

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// A test that kills the postmaster and never restarts it must not leak the
// shared memory only a shutdown frees: the System V segment named in
// postmaster.pid and the /dev/shm segments the postmaster had mapped.
func TestKilledClusterFreesSharedMemory(t *testing.T) {
	var shmid int
	var dsm []string
	t.Run("kill", func(t *testing.T) {
		c := startTimed(t, Options{})
		pidFile, err := os.ReadFile(c.DataDir() + "/postmaster.pid")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(pidFile), "\n")
		if f := strings.Fields(lines[6]); len(f) == 2 {
			shmid, _ = strconv.Atoi(f[1])
		}
		maps, err := os.ReadFile("/proc/" + strconv.Itoa(c.PostmasterPID()) + "/maps")
		if err != nil {
			t.Fatal(err)
		}
		dsm = regexp.MustCompile(`/dev/shm/PostgreSQL\.\d+`).FindAllString(string(maps), -1)
		if err := syscall.Kill(c.PostmasterPID(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		Eventually(t, 5*time.Second, "postmaster to die", func() (bool, error) { return !c.Running(), nil })
	})
	if shmid == 0 || len(dsm) == 0 {
		t.Fatalf("found no shared memory to watch: shmid %d, dsm %q", shmid, dsm)
	}
	const ipcStat = 2
	var buf [256]byte // larger than struct shmid_ds
	if _, _, errno := syscall.Syscall(syscall.SYS_SHMCTL, uintptr(shmid), ipcStat, uintptr(unsafe.Pointer(&buf))); errno == 0 {
		t.Errorf("System V segment %d survived the cleanup", shmid)
	}
	for _, f := range dsm {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the cleanup (%v)", f, err)
		}
	}
}
