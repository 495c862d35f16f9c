//go:build !unix

package state

import "os"

// oNoFollow is not available on this platform; the symlink check relies on
// Lstat and the descriptor's mode alone.
const oNoFollow = 0

// unlockFile is a no-op where bbolt does not use flock.
func unlockFile(*os.File) {}
