//go:build !linux

package store

import "syscall"

// setUserTimeout does nothing where TCP_USER_TIMEOUT does not exist; the
// keepalive probes still detect a dead peer on idle connections.
func setUserTimeout(string, string, syscall.RawConn) error { return nil }
