package e2e

import (
	"encoding/binary"
	"fmt"

	"github.com/rap-fabric/core/mesh/qos"
)

// Frame layout (big-endian):
//
// The flags byte: bit 0 FlagFromInitiator, bit 1 FlagRecordRoute, bits 4–6
// the QoS class + 1 (0: none, read as qos.Default; see ClassOf). Nodes
// before classes ignore those bits and relay them unchanged, so the format
// is backward compatible; the class of data and close frames is in their
// associated data (a relay cannot change it), the class of handshake frames
// is not.
//
//	magic 'E' | version | type | flags | ttl | flow uint32 |
//	srcLen uint8 | src | dstLen uint8 | dst |
//	[flags&FlagRecordRoute: n uint8 | n × (len uint8 | relay id)] |
//	body
//
// The associated data of sealed bodies is the header from magic to the end
// of dst with the ttl byte taken as zero: relays may lower the TTL and append
// to the route record (a clear, unauthenticated diagnostic used by probes)
// but changing anything else makes the frame fail authentication.
//
// Bodies: init = Noise IK message 1 (payload: TAI64N timestamp ‖ service
// name); resp = Noise IK message 2; data and close = counter uint64 ‖
// ChaCha20-Poly1305 ciphertext (nonce = 4 zero bytes ‖ counter).
const (
	// Magic is the first byte of every e2e frame; link layers use it to tell
	// frames from routing messages (routing.Magic) on the same link.
	Magic    byte = 'E'
	version  byte = 1
	ttlOff        = 4
	fixedLen      = 9 // magic … flow
	// MaxFrameLen bounds every frame.
	MaxFrameLen = 65535
	// MaxRecord bounds the route record.
	MaxRecord  = 32
	counterLen = 8
	tagLen     = 16
)

// Type is the frame type.
type Type uint8

// Frame types.
const (
	TypeInit  Type = 1
	TypeResp  Type = 2
	TypeData  Type = 3
	TypeClose Type = 4
)

// Flags.
const (
	// FlagFromInitiator marks frames sent by the flow's initiator.
	FlagFromInitiator byte = 1
	// FlagRecordRoute asks relays to append their id to the route record.
	FlagRecordRoute byte = 2
	// FlagClassMask holds the QoS class + 1 (0: no class).
	FlagClassMask  byte = 0x70
	flagClassShift      = 4
)

// classFlags encodes a QoS class into the flags byte.
func classFlags(c qos.Class) byte {
	if !c.Valid() {
		return 0
	}
	return byte(c+1) << flagClassShift & FlagClassMask
}

// classOfFlags decodes the QoS class of a flags byte (qos.Default when it
// names none or an unknown one).
func classOfFlags(fl byte) qos.Class {
	v := (fl & FlagClassMask) >> flagClassShift
	if v == 0 || !qos.Class(v-1).Valid() {
		return qos.Default
	}
	return qos.Class(v - 1)
}

// ClassOf returns the QoS class an e2e frame carries (qos.Default for a
// frame without one, or for bytes too short to be a frame); relays and link
// layers queue the frame in it. It reads two bytes and never panics.
func ClassOf(frame []byte) qos.Class {
	if len(frame) < fixedLen || frame[0] != Magic {
		return qos.Default
	}
	return classOfFlags(frame[3])
}

// Header is the clear routing header of a frame.
type Header struct {
	Type  Type
	Flags byte
	TTL   uint8
	Flow  uint32
	// Class is the frame's QoS class (from Flags).
	Class    qos.Class
	Src, Dst string
	// Route is the clear route record (relays, in order), if recorded.
	Route []string
}

// parsed locates the parts of a frame.
type parsed struct {
	Header
	adEnd   int // end of dst: the authenticated header is frame[:adEnd]
	bodyOff int
}

// ParseHeader parses the routing header of a frame. It never panics on
// arbitrary input; the body is frame[bodyOffset:].
func ParseHeader(frame []byte) (h Header, bodyOffset int, err error) {
	p, err := parse(frame)
	return p.Header, p.bodyOff, err
}

func parse(b []byte) (parsed, error) {
	var p parsed
	if len(b) < fixedLen+2 || len(b) > MaxFrameLen {
		return p, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[0] != Magic || b[1] != version {
		return p, fmt.Errorf("%w: bad magic/version", ErrMalformed)
	}
	p.Type, p.Flags, p.TTL = Type(b[2]), b[3], b[4]
	p.Class = classOfFlags(p.Flags)
	if p.Type < TypeInit || p.Type > TypeClose {
		return p, fmt.Errorf("%w: type %d", ErrMalformed, b[2])
	}
	p.Flow = binary.BigEndian.Uint32(b[5:9])
	off := fixedLen
	var ok bool
	if p.Src, off, ok = readID(b, off); !ok {
		return p, fmt.Errorf("%w: src", ErrMalformed)
	}
	if p.Dst, off, ok = readID(b, off); !ok {
		return p, fmt.Errorf("%w: dst", ErrMalformed)
	}
	p.adEnd = off
	if p.Flags&FlagRecordRoute != 0 {
		if off >= len(b) || int(b[off]) > MaxRecord {
			return p, fmt.Errorf("%w: route record", ErrMalformed)
		}
		n := int(b[off])
		off++
		for range n {
			var id string
			if id, off, ok = readID(b, off); !ok {
				return p, fmt.Errorf("%w: route record entry", ErrMalformed)
			}
			p.Route = append(p.Route, id)
		}
	}
	p.bodyOff = off
	return p, nil
}

func readID(b []byte, off int) (string, int, bool) {
	if off >= len(b) {
		return "", off, false
	}
	n := int(b[off])
	off++
	if n == 0 || off+n > len(b) {
		return "", off, false
	}
	return string(b[off : off+n]), off + n, true
}

// appendHeader appends a header with the ttl byte set to zero (the AD form)
// and an empty route record when FlagRecordRoute is set. It returns the
// frame and the AD end.
func appendHeader(dst []byte, t Type, flags byte, flow uint32, src, to string) ([]byte, int) {
	start := len(dst)
	dst = append(dst, Magic, version, byte(t), flags, 0)
	dst = binary.BigEndian.AppendUint32(dst, flow)
	dst = append(dst, byte(len(src)))
	dst = append(dst, src...)
	dst = append(dst, byte(len(to)))
	dst = append(dst, to...)
	adEnd := len(dst) - start
	if flags&FlagRecordRoute != 0 {
		dst = append(dst, 0)
	}
	return dst, adEnd
}

// withRecord returns frame with id appended to its route record.
func withRecord(frame []byte, p parsed, id string) []byte {
	if len(p.Route) >= MaxRecord || len(frame)+1+len(id) > MaxFrameLen {
		return frame
	}
	out := make([]byte, 0, len(frame)+1+len(id))
	out = append(out, frame[:p.adEnd]...)
	out = append(out, byte(len(p.Route)+1))
	out = append(out, frame[p.adEnd+1:p.bodyOff]...)
	out = append(out, byte(len(id)))
	out = append(out, id...)
	return append(out, frame[p.bodyOff:]...)
}
