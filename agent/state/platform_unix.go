//go:build unix

package state

import (
	"os"
	"syscall"
)

// oNoFollow makes opening the state file fail if its last path element is a
// symlink.
const oNoFollow = syscall.O_NOFOLLOW

// unlockFile drops bbolt's flock explicitly. Closing the descriptor is not
// enough when bbolt panicked after mapping the file: the mapping keeps the
// open file description, and with it the lock, alive.
func unlockFile(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// freeBytes returns the bytes available to unprivileged users on dir's
// file system.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil //nolint:unconvert // field types differ between systems
}
