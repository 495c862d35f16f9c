// Package wire owns the byte layout of mesh UDP packets: the data/keepalive
// header `type(1) | receiver index(4) | counter(8) | ciphertext` and the two
// Noise IK handshake messages.
//
// It parses and marshals only. It performs no cryptography, keeps no state and
// does no I/O. Parsing never allocates: returned slices alias the input; the
// marshal functions append into caller-provided buffers.
//
// Layouts (all integers big-endian):
//
//	data/keepalive  type(1) | receiver(4) | counter(8) | ciphertext(>=16)
//	initiation      type(1) | sender(4)   | noise msg1(108)           | mac1(16)   = 129 bytes
//	response        type(1) | sender(4)   | receiver(4) | noise msg2(48) | mac1(16) = 73 bytes
//
// The noise message of an initiation is Noise IK message 1 (ephemeral 32,
// encrypted static 32+16, encrypted 12-byte timestamp payload 12+16); a
// response is message 2 (ephemeral 32, encrypted empty payload 16).
package wire

import (
	"encoding/binary"
	"fmt"
)

// Type is the first byte of every packet.
type Type uint8

// Packet types. Zero is never valid, so an all-zero packet is rejected early.
const (
	TypeInitiation Type = 1
	TypeResponse   Type = 2
	TypeData       Type = 3
	TypeKeepalive  Type = 4
)

// String returns the lower-case name of t.
func (t Type) String() string {
	switch t {
	case TypeInitiation:
		return "initiation"
	case TypeResponse:
		return "response"
	case TypeData:
		return "data"
	case TypeKeepalive:
		return "keepalive"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Sizes of the fixed parts of the layouts.
const (
	// HeaderLen is the length of the data/keepalive header.
	HeaderLen = 1 + 4 + 8
	// TagLen is the AEAD tag length (ChaCha20-Poly1305).
	TagLen = 16
	// MinDataLen is the smallest valid data/keepalive packet (empty plaintext).
	MinDataLen = HeaderLen + TagLen
	// NonceOffset and NonceLen locate the 12 header bytes (receiver ‖ counter)
	// that the channel uses as the AEAD nonce.
	NonceOffset = 1
	NonceLen    = 12
	// MACLen is the length of the mac1 field of handshake messages.
	MACLen = 16
	// TimestampLen is the length of the TAI64N timestamp in the initiation payload.
	TimestampLen = 12
	// InitiationNoiseLen is the length of Noise IK message 1 with a timestamp payload.
	InitiationNoiseLen = 32 + 32 + TagLen + TimestampLen + TagLen
	// InitiationLen is the total length of an initiation packet.
	InitiationLen = 1 + 4 + InitiationNoiseLen + MACLen
	// ResponseNoiseLen is the length of Noise IK message 2 with an empty payload.
	ResponseNoiseLen = 32 + TagLen
	// ResponseLen is the total length of a response packet.
	ResponseLen = 1 + 4 + 4 + ResponseNoiseLen + MACLen
	// MaxPacketLen bounds every packet this protocol produces or accepts.
	MaxPacketLen = 65535
)

// Header is the fixed part of a data or keepalive packet.
type Header struct {
	Type     Type
	Receiver uint32
	Counter  uint64
}

// Packet is a parsed packet of any type. Slices alias the parsed buffer and are
// valid only as long as it is.
type Packet struct {
	Type Type
	// Receiver is the receiver's session index (data, keepalive, response).
	Receiver uint32
	// Sender is the sender's session index (initiation, response).
	Sender uint32
	// Counter is the explicit nonce counter (data, keepalive).
	Counter uint64
	// Body is the ciphertext (data, keepalive) or the Noise message (handshakes).
	Body []byte
	// MAC is mac1 (handshakes only).
	MAC []byte
}

// Parse decodes any packet type. It checks lengths and the type byte only; it
// never allocates and never panics on arbitrary input.
func Parse(b []byte) (Packet, error) {
	if len(b) == 0 {
		return Packet{}, ErrShort
	}
	if len(b) > MaxPacketLen {
		return Packet{}, ErrTooLong
	}
	switch t := Type(b[0]); t {
	case TypeData, TypeKeepalive:
		h, err := ParseHeader(b)
		if err != nil {
			return Packet{}, err
		}
		return Packet{Type: t, Receiver: h.Receiver, Counter: h.Counter, Body: b[HeaderLen:]}, nil
	case TypeInitiation:
		if len(b) != InitiationLen {
			return Packet{}, fmt.Errorf("%w: initiation is %d bytes, want %d", ErrLength, len(b), InitiationLen)
		}
		return Packet{
			Type:   t,
			Sender: binary.BigEndian.Uint32(b[1:5]),
			Body:   b[5 : 5+InitiationNoiseLen],
			MAC:    b[InitiationLen-MACLen:],
		}, nil
	case TypeResponse:
		if len(b) != ResponseLen {
			return Packet{}, fmt.Errorf("%w: response is %d bytes, want %d", ErrLength, len(b), ResponseLen)
		}
		return Packet{
			Type:     t,
			Sender:   binary.BigEndian.Uint32(b[1:5]),
			Receiver: binary.BigEndian.Uint32(b[5:9]),
			Body:     b[9 : 9+ResponseNoiseLen],
			MAC:      b[ResponseLen-MACLen:],
		}, nil
	default:
		return Packet{}, fmt.Errorf("%w: %d", ErrType, b[0])
	}
}

// ParseHeader decodes the header of a data or keepalive packet. The ciphertext
// is b[HeaderLen:]. A keepalive must carry exactly an empty plaintext.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < MinDataLen {
		return Header{}, ErrShort
	}
	t := Type(b[0])
	switch t {
	case TypeData:
	case TypeKeepalive:
		if len(b) != MinDataLen {
			return Header{}, fmt.Errorf("%w: keepalive carries data", ErrLength)
		}
	default:
		return Header{}, fmt.Errorf("%w: %d is not a data type", ErrType, b[0])
	}
	return Header{
		Type:     t,
		Receiver: binary.BigEndian.Uint32(b[1:5]),
		Counter:  binary.BigEndian.Uint64(b[5:13]),
	}, nil
}

// ReceiverIndex returns the receiver index of a data, keepalive or response
// packet without validating the rest; ok is false for initiations and junk.
// It is the cheap demultiplexing key used by socket adapters.
func ReceiverIndex(b []byte) (index uint32, ok bool) {
	if len(b) == 0 {
		return 0, false
	}
	switch Type(b[0]) {
	case TypeData, TypeKeepalive:
		if len(b) < MinDataLen {
			return 0, false
		}
		return binary.BigEndian.Uint32(b[1:5]), true
	case TypeResponse:
		if len(b) != ResponseLen {
			return 0, false
		}
		return binary.BigEndian.Uint32(b[5:9]), true
	}
	return 0, false
}

// AppendHeader appends a data/keepalive header to dst. The caller appends the
// ciphertext after it.
func AppendHeader(dst []byte, h Header) []byte {
	dst = append(dst, byte(h.Type))
	dst = binary.BigEndian.AppendUint32(dst, h.Receiver)
	return binary.BigEndian.AppendUint64(dst, h.Counter)
}

// AppendInitiationPrefix appends `type | sender` to dst; the caller then appends
// the Noise message (InitiationNoiseLen bytes) and mac1 (MACLen bytes).
func AppendInitiationPrefix(dst []byte, sender uint32) []byte {
	dst = append(dst, byte(TypeInitiation))
	return binary.BigEndian.AppendUint32(dst, sender)
}

// AppendResponsePrefix appends `type | sender | receiver` to dst; the caller
// then appends the Noise message (ResponseNoiseLen bytes) and mac1.
func AppendResponsePrefix(dst []byte, sender, receiver uint32) []byte {
	dst = append(dst, byte(TypeResponse))
	dst = binary.BigEndian.AppendUint32(dst, sender)
	return binary.BigEndian.AppendUint32(dst, receiver)
}

// Timestamp is a TAI64N label: 8 bytes of seconds (2^62 + Unix seconds) and 4
// bytes of nanoseconds, big-endian, so that byte order equals time order.
type Timestamp [TimestampLen]byte

// TAI64N encodes a Unix time given as seconds and nanoseconds.
func TAI64N(sec int64, nsec int32) Timestamp {
	var t Timestamp
	binary.BigEndian.PutUint64(t[:8], uint64(1<<62)+uint64(sec))
	binary.BigEndian.PutUint32(t[8:], uint32(nsec))
	return t
}

// After reports whether t is strictly later than u.
func (t Timestamp) After(u Timestamp) bool {
	for i := range t {
		if t[i] != u[i] {
			return t[i] > u[i]
		}
	}
	return false
}
