//go:build !unix

package facts

import "errors"

type unameInfo struct{ release, version string }

func uname() (unameInfo, error) {
	return unameInfo{}, errors.New("uname is not available on this platform")
}
