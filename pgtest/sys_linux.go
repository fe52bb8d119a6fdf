package pgtest

import (
	"os"
	"syscall"
)

// removeShm marks a System V shared memory segment for removal; the kernel
// frees it once nothing is attached, so orphans still using it are safe.
func removeShm(id int) {
	const ipcRMID = 0
	syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), ipcRMID, 0)
}

// ramDir returns /dev/shm if it is a tmpfs with room to spare, else "".
// Copying the template there is about ten times faster than onto a disk,
// and the clusters are throwaway (fsync is off anyway). Docker's default
// 64 MB /dev/shm is too small for even one cluster, hence the space check.
func ramDir() string {
	const dir = "/dev/shm"
	const tmpfsMagic = 0x01021994
	const minFree = 2 << 30
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Type != tmpfsMagic {
		return ""
	}
	if uint64(st.Bavail)*uint64(st.Bsize) < minFree {
		return ""
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode()&0o777 != 0o777 {
		return ""
	}
	return dir
}
