//go:build !unix

package state

import (
	"errors"
	"os"
)

// oNoFollow is not available on this platform; the symlink check relies on
// Lstat and the descriptor's mode alone.
const oNoFollow = 0

// unlockFile is a no-op where bbolt does not use flock.
func unlockFile(*os.File) {}

// freeBytes is not measured on this platform: the disk_space preflight
// check fails rather than guess.
func freeBytes(string) (uint64, error) {
	return 0, errors.New("free space unknown on this platform")
}
