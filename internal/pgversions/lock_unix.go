//go:build unix

package pgversions

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir/.lock, waiting for any other
// Install of the same root (parallel test binaries, two shells) to finish,
// and returns its release. The kernel drops the lock if we die.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgversions: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("pgversions: locking %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
