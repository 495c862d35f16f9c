package gossip

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
)

// Record format (version 1, big-endian), carried as memberlist node Meta:
//
//	magic 'R' (1) · version 1 (1)
//	len (1) · cluster id (1..MaxIDLen)
//	len (1) · node id    (1..MaxIDLen)
//	len (1) · region     (0..MaxRegionLen)
//	load (2): 0..10000 basis points
//	incarnation (8)
//	count (1, 0..MaxEndpoints) · per endpoint: family 4|6 (1) · addr (4|16) · port (2)
//	Ed25519 signature (64) over recordSigContext ‖ every byte before it
//
// The largest record is MaxRecordLen = 316 bytes, below memberlist's
// MetaMaxSize (512).
const (
	recordMagic   = 'R'
	recordVersion = 1
	// MaxIDLen bounds cluster and node ids in a record.
	MaxIDLen = 64
	// MaxRegionLen bounds the region name in a record.
	MaxRegionLen = 32
	// MaxEndpoints bounds the endpoints in a record.
	MaxEndpoints = 4
	// MaxRecordLen is the largest encoded record.
	MaxRecordLen = 2 + 1 + MaxIDLen + 1 + MaxIDLen + 1 + MaxRegionLen + 2 + 8 + 1 + MaxEndpoints*(1+16+2) + ed25519.SignatureSize
)

// recordSigContext separates record signatures from every other use of the
// identity key.
const recordSigContext = "rap-fabric gossip record v1\x00"

// Record is what a node says about itself in gossip. Nothing in it is
// authoritative: it proposes where and how well the node can be reached.
type Record struct {
	// ClusterID is the cluster the record is for.
	ClusterID string
	// NodeID is the node's id; it must equal the memberlist node name.
	NodeID string
	// Endpoints are the UDP addresses of the node's mesh socket.
	Endpoints []netip.AddrPort
	// Region is the node's region name.
	Region string
	// Load is the node's load, 0..1 (carried with 1e-4 resolution).
	Load float64
	// Incarnation orders a node's records: receivers ignore one older than
	// the newest seen. It is the signing time in Unix nanoseconds, forced
	// strictly increasing.
	Incarnation uint64
}

func (r Record) validate() error {
	switch {
	case len(r.ClusterID) == 0 || len(r.ClusterID) > MaxIDLen:
		return fmt.Errorf("%w: cluster id length %d (1..%d)", ErrMalformed, len(r.ClusterID), MaxIDLen)
	case len(r.NodeID) == 0 || len(r.NodeID) > MaxIDLen:
		return fmt.Errorf("%w: node id length %d (1..%d)", ErrMalformed, len(r.NodeID), MaxIDLen)
	case len(r.Region) > MaxRegionLen:
		return fmt.Errorf("%w: region length %d (max %d)", ErrMalformed, len(r.Region), MaxRegionLen)
	case len(r.Endpoints) > MaxEndpoints:
		return fmt.Errorf("%w: %d endpoints (max %d)", ErrMalformed, len(r.Endpoints), MaxEndpoints)
	case math.IsNaN(r.Load) || r.Load < 0 || r.Load > 1:
		return fmt.Errorf("%w: load %v outside 0..1", ErrMalformed, r.Load)
	}
	for _, ep := range r.Endpoints {
		if !ep.IsValid() || ep.Port() == 0 {
			return fmt.Errorf("%w: endpoint %v", ErrMalformed, ep)
		}
	}
	return nil
}

// EncodeRecord validates r and returns its signed encoding.
func EncodeRecord(r Record, key ed25519.PrivateKey) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: identity key is %d bytes", ErrConfig, len(key))
	}
	b := make([]byte, 0, MaxRecordLen)
	b = append(b, recordMagic, recordVersion)
	b = append(b, byte(len(r.ClusterID)))
	b = append(b, r.ClusterID...)
	b = append(b, byte(len(r.NodeID)))
	b = append(b, r.NodeID...)
	b = append(b, byte(len(r.Region)))
	b = append(b, r.Region...)
	b = binary.BigEndian.AppendUint16(b, uint16(math.Round(r.Load*10000)))
	b = binary.BigEndian.AppendUint64(b, r.Incarnation)
	b = append(b, byte(len(r.Endpoints)))
	for _, ep := range r.Endpoints {
		a := ep.Addr().Unmap()
		if a.Is4() {
			b = append(b, 4)
			a4 := a.As4()
			b = append(b, a4[:]...)
		} else {
			b = append(b, 6)
			a16 := a.As16()
			b = append(b, a16[:]...)
		}
		b = binary.BigEndian.AppendUint16(b, ep.Port())
	}
	sig := ed25519.Sign(key, sigMessage(b))
	return append(b, sig...), nil
}

func sigMessage(body []byte) []byte {
	m := make([]byte, 0, len(recordSigContext)+len(body))
	return append(append(m, recordSigContext...), body...)
}

// reader is a bounds-checked cursor; any overrun sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u8() int {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

// DecodeRecord parses a record WITHOUT verifying its signature, returning
// the record, the signed body and the signature. Use VerifyRecord unless
// you only need to know who a record claims to be.
func DecodeRecord(b []byte) (Record, []byte, []byte, error) {
	var r Record
	if len(b) > MaxRecordLen {
		return r, nil, nil, fmt.Errorf("%w: %d bytes (max %d)", ErrMalformed, len(b), MaxRecordLen)
	}
	if len(b) < 2+ed25519.SignatureSize || b[0] != recordMagic || b[1] != recordVersion {
		return r, nil, nil, fmt.Errorf("%w: bad header", ErrMalformed)
	}
	body, sig := b[:len(b)-ed25519.SignatureSize], b[len(b)-ed25519.SignatureSize:]
	rd := &reader{b: body[2:]}
	r.ClusterID = string(rd.take(rd.u8()))
	r.NodeID = string(rd.take(rd.u8()))
	r.Region = string(rd.take(rd.u8()))
	if l := rd.take(2); l != nil {
		r.Load = float64(binary.BigEndian.Uint16(l)) / 10000
	}
	if inc := rd.take(8); inc != nil {
		r.Incarnation = binary.BigEndian.Uint64(inc)
	}
	n := rd.u8()
	if n > MaxEndpoints {
		return Record{}, nil, nil, fmt.Errorf("%w: %d endpoints", ErrMalformed, n)
	}
	for range n {
		var a netip.Addr
		switch rd.u8() {
		case 4:
			if v := rd.take(4); v != nil {
				a = netip.AddrFrom4([4]byte(v))
			}
		case 6:
			if v := rd.take(16); v != nil {
				a = netip.AddrFrom16([16]byte(v))
			}
		default:
			rd.bad = true
		}
		var port uint16
		if v := rd.take(2); v != nil {
			port = binary.BigEndian.Uint16(v)
		}
		if rd.bad {
			break
		}
		r.Endpoints = append(r.Endpoints, netip.AddrPortFrom(a, port))
	}
	if rd.bad || len(rd.b) != 0 {
		return Record{}, nil, nil, fmt.Errorf("%w: truncated or trailing bytes", ErrMalformed)
	}
	if err := r.validate(); err != nil {
		return Record{}, nil, nil, err
	}
	return r, body, sig, nil
}

// VerifyRecord decodes b and checks its signature under pub.
func VerifyRecord(b []byte, pub ed25519.PublicKey) (Record, error) {
	r, body, sig, err := DecodeRecord(b)
	if err != nil {
		return Record{}, err
	}
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, sigMessage(body), sig) {
		return Record{}, fmt.Errorf("%w: node %q", ErrBadSignature, r.NodeID)
	}
	return r, nil
}
