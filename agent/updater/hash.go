package updater

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

type hexHash struct{ hash.Hash }

func newHash() hexHash { return hexHash{sha256.New()} }

func (h hexHash) hex() string { return hex.EncodeToString(h.Sum(nil)) }
