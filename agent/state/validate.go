package state

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
)

// This file checks the on-disk structure of a bbolt file before bbolt walks
// it. bbolt trusts its pages: a branch page that points at itself sends its
// cursor into unbounded recursion, and a damaged freelist count makes it
// allocate gigabytes. Both are fatal to the process, not recoverable panics.
// So Open reads the pages itself (bounded reads, every page visited at most
// once) and refuses the file with ErrCorrupt unless:
//   - a meta page validates (magic, version, FNV-64a checksum), chosen by the
//     same rule as bbolt (highest txid that validates);
//   - every page reachable from the root bucket, including nested and inline
//     buckets, lies inside the high-water mark and the file, identifies as
//     itself, has a branch/leaf type, is referenced once, and holds elements
//     whose keys and values lie inside the page;
//   - the freelist page has a sane count and page ids below the high-water
//     mark.
//
// The layout constants mirror go.etcd.io/bbolt/internal/common (v1.5.0);
// bbolt uses the machine's native byte order.

const (
	pageHeaderSize = 16 // id u64, flags u16, count u16, overflow u32
	elementSize    = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHdrSize  = 16 // root pgid u64, sequence u64
	metaOffset     = pageHeaderSize
	metaChecksumAt = 56 // bytes of meta before the checksum field
	metaSize       = metaChecksumAt + 8

	flagBranch   = 0x01
	flagLeaf     = 0x02
	flagMeta     = 0x04
	flagFreelist = 0x10
	leafIsBucket = 0x01

	boltMagic   = 0xED0CDAED
	boltVersion = 2
	noFreelist  = ^uint64(0)

	maxTreeDepth = 64
)

var ne = binary.NativeEndian

type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64 // pgid: first page id past the end of the used file
	txid     uint64
}

func parseMeta(b []byte) (boltMeta, bool) {
	if len(b) < metaOffset+metaSize || ne.Uint16(b[8:10]) != flagMeta {
		return boltMeta{}, false
	}
	m := b[metaOffset : metaOffset+metaSize]
	if ne.Uint32(m[0:4]) != boltMagic || ne.Uint32(m[4:8]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	_, _ = h.Write(m[:metaChecksumAt])
	if h.Sum64() != ne.Uint64(m[metaChecksumAt:]) {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: ne.Uint32(m[8:12]),
		root:     ne.Uint64(m[16:24]),
		freelist: ne.Uint64(m[32:40]),
		hwm:      ne.Uint64(m[40:48]),
		txid:     ne.Uint64(m[48:56]),
	}, true
}

type structChecker struct {
	r        io.ReaderAt
	size     int64
	pageSize int64
	hwm      uint64
	seen     map[uint64]bool
}

// checkStructure validates the bbolt file behind r (size bytes, pages of
// pageSize as bbolt reported after opening it read-only).
func checkStructure(r io.ReaderAt, size int64, pageSize int) error {
	if pageSize < 1024 || int64(pageSize)*2 > size {
		return fmt.Errorf("page size %d does not fit a %d-byte file", pageSize, size)
	}
	ps := int64(pageSize)
	var metas [2]boltMeta
	var ok [2]bool
	for i := range metas {
		buf := make([]byte, metaOffset+metaSize)
		if _, err := r.ReadAt(buf, int64(i)*ps); err == nil {
			metas[i], ok[i] = parseMeta(buf)
		}
	}
	a, b := 0, 1
	if metas[1].txid > metas[0].txid {
		a, b = 1, 0
	}
	var m boltMeta
	switch {
	case ok[a]:
		m = metas[a]
	case ok[b]:
		m = metas[b]
	default:
		return fmt.Errorf("no valid meta page")
	}
	if int64(m.pageSize) != ps {
		return fmt.Errorf("meta page size %d, bbolt uses %d", m.pageSize, ps)
	}
	if m.hwm < 3 || m.hwm > uint64(size/ps) {
		return fmt.Errorf("truncated or damaged: meta page says %d pages, file holds %d", m.hwm, size/ps)
	}
	c := &structChecker{r: r, size: size, pageSize: ps, hwm: m.hwm, seen: map[uint64]bool{0: true, 1: true}}
	if m.freelist != noFreelist {
		if err := c.checkFreelist(m.freelist); err != nil {
			return err
		}
	}
	return c.walk(m.root, 0)
}

// readPage reads page id and its overflow pages, marking them seen.
func (c *structChecker) readPage(id uint64) ([]byte, error) {
	if id < 2 || id >= c.hwm {
		return nil, fmt.Errorf("page %d outside [2, %d)", id, c.hwm)
	}
	hdr := make([]byte, pageHeaderSize)
	if _, err := c.r.ReadAt(hdr, int64(id)*c.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := ne.Uint64(hdr[0:8]); got != id {
		return nil, fmt.Errorf("page %d identifies as %d", id, got)
	}
	overflow := uint64(ne.Uint32(hdr[12:16]))
	if id+overflow >= c.hwm {
		return nil, fmt.Errorf("page %d overflows past the high-water mark", id)
	}
	for p := id; p <= id+overflow; p++ {
		if c.seen[p] {
			return nil, fmt.Errorf("page %d referenced twice", p)
		}
		c.seen[p] = true
	}
	buf := make([]byte, int64(overflow+1)*c.pageSize)
	if _, err := c.r.ReadAt(buf, int64(id)*c.pageSize); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	return buf, nil
}

func (c *structChecker) checkFreelist(id uint64) error {
	p, err := c.readPage(id)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	if ne.Uint16(p[8:10]) != flagFreelist {
		return fmt.Errorf("freelist page %d has flags %#x", id, ne.Uint16(p[8:10]))
	}
	idx, count := uint64(0), uint64(ne.Uint16(p[10:12]))
	if count == 0xFFFF {
		if len(p) < pageHeaderSize+8 {
			return fmt.Errorf("freelist page %d too short", id)
		}
		idx, count = 1, ne.Uint64(p[pageHeaderSize:])
	}
	room := uint64(len(p)-pageHeaderSize) / 8
	if count > room || idx+count > room {
		return fmt.Errorf("freelist page %d claims %d ids, room for %d", id, count, room)
	}
	for i := idx; i < idx+count; i++ {
		if fid := ne.Uint64(p[pageHeaderSize+8*i:]); fid < 2 || fid >= c.hwm {
			return fmt.Errorf("freelist page %d lists page %d outside [2, %d)", id, fid, c.hwm)
		}
	}
	return nil
}

// walk checks the page tree rooted at id.
func (c *structChecker) walk(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("page tree deeper than %d", maxTreeDepth)
	}
	p, err := c.readPage(id)
	if err != nil {
		return err
	}
	switch flags := ne.Uint16(p[8:10]); flags {
	case flagBranch:
		count := int(ne.Uint16(p[10:12]))
		if count == 0 || pageHeaderSize+count*elementSize > len(p) {
			return fmt.Errorf("branch page %d has %d elements", id, count)
		}
		for i := range count {
			e := pageHeaderSize + i*elementSize
			pos, ksize := int(ne.Uint32(p[e:])), int(ne.Uint32(p[e+4:]))
			if !inside(len(p), e, pos, ksize) {
				return fmt.Errorf("branch page %d element %d key outside the page", id, i)
			}
			if err := c.walk(ne.Uint64(p[e+8:]), depth+1); err != nil {
				return err
			}
		}
		return nil
	case flagLeaf:
		return c.checkLeaf(id, p, depth)
	default:
		return fmt.Errorf("page %d has flags %#x, want branch or leaf", id, flags)
	}
}

// checkLeaf checks the elements of a leaf page (a real one, or an inline
// bucket's page inside a value) and descends into nested buckets.
func (c *structChecker) checkLeaf(id uint64, p []byte, depth int) error {
	count := int(ne.Uint16(p[10:12]))
	if pageHeaderSize+count*elementSize > len(p) {
		return fmt.Errorf("leaf page %d has %d elements, too many for %d bytes", id, count, len(p))
	}
	for i := range count {
		e := pageHeaderSize + i*elementSize
		flags := ne.Uint32(p[e:])
		pos, ksize, vsize := int(ne.Uint32(p[e+4:])), int(ne.Uint32(p[e+8:])), int(ne.Uint32(p[e+12:]))
		if !inside(len(p), e, pos, ksize+vsize) || ksize+vsize < ksize {
			return fmt.Errorf("leaf page %d element %d outside the page", id, i)
		}
		if flags&leafIsBucket == 0 {
			continue
		}
		v := p[e+pos+ksize : e+pos+ksize+vsize]
		if len(v) < bucketHdrSize {
			return fmt.Errorf("leaf page %d element %d: bucket header too short", id, i)
		}
		if depth+1 > maxTreeDepth {
			return fmt.Errorf("buckets nested deeper than %d", maxTreeDepth)
		}
		if root := ne.Uint64(v[0:8]); root != 0 {
			if err := c.walk(root, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := v[bucketHdrSize:]
		if len(inline) < pageHeaderSize || ne.Uint16(inline[8:10]) != flagLeaf {
			return fmt.Errorf("leaf page %d element %d: malformed inline bucket", id, i)
		}
		if err := c.checkLeaf(id, inline, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// inside reports whether [e+pos, e+pos+n) lies within a buffer of length l,
// without overflowing.
func inside(l, e, pos, n int) bool {
	if pos < 0 || n < 0 || e < 0 {
		return false
	}
	start := e + pos
	return start >= e && start <= l && n <= l-start
}
