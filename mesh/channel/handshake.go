package channel

import (
	"crypto/subtle"

	"github.com/flynn/noise"
	"github.com/rap-fabric/core/mesh/wire"
	"golang.org/x/crypto/blake2s"
)

// suite is Noise_IK_25519_ChaChaPoly_BLAKE2s.
var suite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)

const protocolLabel = "rap-fabric mesh v1"

// prologue binds handshakes to the cluster: a different cluster id yields a
// different handshake hash and the handshake fails.
func prologue(clusterID string) []byte {
	return []byte(protocolLabel + "\x00prologue\x00" + clusterID)
}

// macKey derives the mac1 key for handshake messages addressed to the holder
// of static public key pub within clusterID. mac1 lets a receiver drop junk,
// foreign-cluster and misaddressed handshakes before any public-key work.
func macKey(clusterID string, pub Key) [32]byte {
	b := make([]byte, 0, len(protocolLabel)+len(clusterID)+8+KeyLen)
	b = append(b, protocolLabel+"\x00mac1\x00"...)
	b = append(b, clusterID...)
	b = append(b, 0)
	b = append(b, pub[:]...)
	return blake2s.Sum256(b)
}

// appendMAC appends BLAKE2s-128(key, msg) to msg.
func appendMAC(key *[32]byte, msg []byte) []byte {
	h, err := blake2s.New128(key[:])
	if err != nil {
		panic(err) // unreachable: the key length is fixed
	}
	h.Write(msg)
	return h.Sum(msg)
}

// checkMAC verifies the trailing mac1 of a handshake packet.
func checkMAC(key *[32]byte, pkt []byte) bool {
	if len(pkt) < wire.MACLen {
		return false
	}
	body := pkt[:len(pkt)-wire.MACLen]
	h, err := blake2s.New128(key[:])
	if err != nil {
		return false
	}
	h.Write(body)
	var sum [wire.MACLen]byte
	return subtle.ConstantTimeCompare(h.Sum(sum[:0]), pkt[len(body):]) == 1
}

func (e *Endpoint) newHandshake(initiator bool, peerStatic []byte) (*noise.HandshakeState, error) {
	return noise.NewHandshakeState(noise.Config{
		CipherSuite:   suite,
		Random:        e.cfg.Rand,
		Pattern:       noise.HandshakeIK,
		Initiator:     initiator,
		Prologue:      e.prologue,
		StaticKeypair: e.static,
		PeerStatic:    peerStatic,
	})
}
