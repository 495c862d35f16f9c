package routing

import (
	"encoding/binary"
	"fmt"
)

// Metric is an additive route cost. Infinity means unreachable.
type Metric uint16

// Infinity is the metric of an unreachable destination (a retraction).
const Infinity Metric = 0xFFFF

// add returns a+b, saturating at Infinity.
func (m Metric) add(b Metric) Metric {
	s := uint32(m) + uint32(b)
	if s >= uint32(Infinity) {
		return Infinity
	}
	return Metric(s)
}

// Message layout (big-endian). Every message starts with
//
//	magic 'R' (0x52) | version (1) | kind (1)
//
// followed, for KindUpdate, by
//
//	count uint16 | count × entry
//	entry: seqno uint32 | metric uint16 | hops uint8 | idLen uint8 | id (idLen ≥ 1)
//
// and, for KindSeqRequest, by
//
//	seqno uint32 | hopLimit uint8 | idLen uint8 | id
//
// The sender is not encoded: it is the authenticated neighbour the link
// layer received the message from.
const (
	// Magic is the first byte of every routing message; link layers use it
	// to tell routing messages from other traffic on the same link.
	Magic   byte = 'R'
	version byte = 1
	// headerLen is magic | version | kind.
	headerLen = 3
	// entryFixedLen is seqno | metric | hops | idLen.
	entryFixedLen = 4 + 2 + 1 + 1
	// MaxIDLen bounds node ids on the wire.
	MaxIDLen = 255
	// minMessageLen fits the largest single entry.
	minMessageLen = headerLen + 2 + entryFixedLen + MaxIDLen
	// MaxMessageLen bounds every routing message accepted or produced.
	MaxMessageLen = 65535
)

// Kind is the message type.
type Kind uint8

// Message kinds.
const (
	// KindUpdate carries route advertisements.
	KindUpdate Kind = 1
	// KindSeqRequest asks the destination for a newer sequence number.
	KindSeqRequest Kind = 2
)

// Entry is one advertised route: the sender reaches Dst with Metric over
// Hops hops, with the destination's sequence number Seq. Metric Infinity is
// a retraction.
type Entry struct {
	Dst    string
	Seq    uint32
	Metric Metric
	Hops   uint8
}

// SeqRequest asks for a route to Dst with a sequence number of at least Seq;
// it is forwarded towards Dst at most HopLimit times.
type SeqRequest struct {
	Dst      string
	Seq      uint32
	HopLimit uint8
}

// Message is a decoded routing message: Entries for KindUpdate, Request for
// KindSeqRequest.
type Message struct {
	Kind    Kind
	Entries []Entry
	Request SeqRequest
}

// EntryLen is the encoded size of e.
func EntryLen(e Entry) int { return entryFixedLen + len(e.Dst) }

// AppendUpdateHeader appends the header of an update with count entries.
func AppendUpdateHeader(dst []byte, count int) []byte {
	dst = append(dst, Magic, version, byte(KindUpdate))
	return binary.BigEndian.AppendUint16(dst, uint16(count))
}

// AppendEntry appends one update entry. Ids longer than MaxIDLen are
// truncated, which no valid configuration produces (New rejects them).
func AppendEntry(dst []byte, e Entry) []byte {
	id := e.Dst
	if len(id) > MaxIDLen {
		id = id[:MaxIDLen]
	}
	dst = binary.BigEndian.AppendUint32(dst, e.Seq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(e.Metric))
	dst = append(dst, e.Hops, byte(len(id)))
	return append(dst, id...)
}

// EncodeUpdate appends a whole update message carrying entries.
func EncodeUpdate(dst []byte, entries []Entry) []byte {
	dst = AppendUpdateHeader(dst, len(entries))
	for _, e := range entries {
		dst = AppendEntry(dst, e)
	}
	return dst
}

// EncodeSeqRequest appends a sequence-number request.
func EncodeSeqRequest(dst []byte, r SeqRequest) []byte {
	id := r.Dst
	if len(id) > MaxIDLen {
		id = id[:MaxIDLen]
	}
	dst = append(dst, Magic, version, byte(KindSeqRequest))
	dst = binary.BigEndian.AppendUint32(dst, r.Seq)
	dst = append(dst, r.HopLimit, byte(len(id)))
	return append(dst, id...)
}

// Decode parses a routing message. It never panics on arbitrary input, bounds
// its allocations by the input length, and rejects trailing bytes, empty ids
// and unknown kinds or versions, so a successfully decoded message re-encodes
// to exactly the same bytes.
func Decode(b []byte) (Message, error) {
	if len(b) < headerLen {
		return Message{}, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if len(b) > MaxMessageLen {
		return Message{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrMalformed, len(b), MaxMessageLen)
	}
	if b[0] != Magic || b[1] != version {
		return Message{}, fmt.Errorf("%w: bad magic or version %#x %d", ErrMalformed, b[0], b[1])
	}
	switch Kind(b[2]) {
	case KindUpdate:
		p := b[headerLen:]
		if len(p) < 2 {
			return Message{}, fmt.Errorf("%w: update without count", ErrMalformed)
		}
		n := int(binary.BigEndian.Uint16(p))
		p = p[2:]
		if n*(entryFixedLen+1) > len(p) {
			return Message{}, fmt.Errorf("%w: %d entries cannot fit in %d bytes", ErrMalformed, n, len(p))
		}
		m := Message{Kind: KindUpdate, Entries: make([]Entry, 0, n)}
		for i := 0; i < n; i++ {
			if len(p) < entryFixedLen {
				return Message{}, fmt.Errorf("%w: entry %d truncated", ErrMalformed, i)
			}
			idLen := int(p[7])
			if idLen == 0 || len(p) < entryFixedLen+idLen {
				return Message{}, fmt.Errorf("%w: entry %d id length %d", ErrMalformed, i, idLen)
			}
			m.Entries = append(m.Entries, Entry{
				Seq:    binary.BigEndian.Uint32(p[0:4]),
				Metric: Metric(binary.BigEndian.Uint16(p[4:6])),
				Hops:   p[6],
				Dst:    string(p[entryFixedLen : entryFixedLen+idLen]),
			})
			p = p[entryFixedLen+idLen:]
		}
		if len(p) != 0 {
			return Message{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(p))
		}
		return m, nil
	case KindSeqRequest:
		p := b[headerLen:]
		if len(p) < 6 {
			return Message{}, fmt.Errorf("%w: request truncated", ErrMalformed)
		}
		idLen := int(p[5])
		if idLen == 0 || len(p) != 6+idLen {
			return Message{}, fmt.Errorf("%w: request id length %d in %d bytes", ErrMalformed, idLen, len(p))
		}
		return Message{Kind: KindSeqRequest, Request: SeqRequest{
			Seq:      binary.BigEndian.Uint32(p[0:4]),
			HopLimit: p[4],
			Dst:      string(p[6:]),
		}}, nil
	default:
		return Message{}, fmt.Errorf("%w: kind %d", ErrMalformed, b[2])
	}
}

// seqNewer reports whether a is newer than b in modular (RFC 1982) order.
func seqNewer(a, b uint32) bool { return a != b && int32(a-b) > 0 }
