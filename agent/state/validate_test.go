package state

import (
	"bytes"
	"hash/fnv"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// craftFile builds a minimal bbolt-format file whose root page is built by
// root (page 3 of 4), with valid meta pages.
func craftFile(t *testing.T, root func(p []byte)) []byte {
	t.Helper()
	const ps = 4096
	f := make([]byte, 4*ps)
	for i := range 2 {
		p := f[i*ps:]
		ne.PutUint64(p[0:], uint64(i))
		ne.PutUint16(p[8:], flagMeta)
		m := p[metaOffset:]
		ne.PutUint32(m[0:], boltMagic)
		ne.PutUint32(m[4:], boltVersion)
		ne.PutUint32(m[8:], ps)
		ne.PutUint64(m[16:], 3)          // root bucket page
		ne.PutUint64(m[32:], noFreelist) // freelist
		ne.PutUint64(m[40:], 4)          // high-water mark
		ne.PutUint64(m[48:], uint64(i))  // txid
		h := fnv.New64a()
		h.Write(m[:metaChecksumAt])
		ne.PutUint64(m[metaChecksumAt:], h.Sum64())
	}
	p := f[3*ps : 4*ps]
	ne.PutUint64(p[0:], 3)
	root(p)
	return f
}

func TestCheckStructure(t *testing.T) {
	emptyLeaf := func(p []byte) { ne.PutUint16(p[8:], flagLeaf) }
	selfBranch := func(p []byte) {
		ne.PutUint16(p[8:], flagBranch)
		ne.PutUint16(p[10:], 1)
		e := p[pageHeaderSize:]
		ne.PutUint32(e[0:], elementSize) // key right after the element
		ne.PutUint32(e[4:], 1)
		ne.PutUint64(e[8:], 3) // points at itself
	}
	hugeLeaf := func(p []byte) {
		ne.PutUint16(p[8:], flagLeaf)
		ne.PutUint16(p[10:], 1)
		e := p[pageHeaderSize:]
		ne.PutUint32(e[4:], elementSize)
		ne.PutUint32(e[8:], 1)
		ne.PutUint32(e[12:], 1<<31) // value far past the page
	}
	require.NoError(t, checkStructure(bytes.NewReader(craftFile(t, emptyLeaf)), 4*4096, 4096))
	err := checkStructure(bytes.NewReader(craftFile(t, selfBranch)), 4*4096, 4096)
	require.ErrorContains(t, err, "referenced twice")
	err = checkStructure(bytes.NewReader(craftFile(t, hugeLeaf)), 4*4096, 4096)
	require.ErrorContains(t, err, "outside the page")

	// Through Open: the self-referencing branch page would send bbolt's
	// cursor into unbounded recursion; Open must refuse it instead.
	path := filepath.Join(t.TempDir(), "cycle.db")
	require.NoError(t, os.WriteFile(path, craftFile(t, selfBranch), 0o600))
	_, err = Open(path, Options{})
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "referenced twice")
}
