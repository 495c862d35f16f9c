//go:build unix

package facts

import "golang.org/x/sys/unix"

type unameInfo struct{ release, version string }

func uname() (unameInfo, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return unameInfo{}, err
	}
	return unameInfo{release: unix.ByteSliceToString(u.Release[:]), version: unix.ByteSliceToString(u.Version[:])}, nil
}
