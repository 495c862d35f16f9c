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
