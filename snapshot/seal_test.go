package snapshot

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/base64"
	"math/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// x25519Key derives a deterministic X25519 key for a test node.
func x25519Key(t *testing.T, seed byte) *ecdh.PrivateKey {
	t.Helper()
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{seed}, 32))
	require.NoError(t, err)
	return k
}

// secretsOf lists what a storage node must not be able to read in s: the
// gossip key (as it appears in the JSON payload), every peer and uplink endpoint and
// Noise key, and every service config.
func secretsOf(s Snapshot) [][]byte {
	var out [][]byte
	if g := s.Body.GossipKey; g != nil {
		out = append(out, []byte(base64.StdEncoding.EncodeToString(g.Key)))
	}
	for _, p := range append(append([]Peer{}, s.Body.Peers...), s.Body.Uplinks...) {
		for _, e := range p.Endpoints {
			out = append(out, []byte(e))
		}
	}
	for _, sv := range s.Body.Services {
		out = append(out, sv.Config)
	}
	return out
}

// TestSealedSnapshotHidesContentAndStaysVerifiable seals a mesh node's and a
// service node's snapshots to their X25519 keys and checks: (1) the sealed
// bytes contain none of the gossip key, peer endpoints or service configs
// (each of which the plain envelope does contain); (2) a storage node
// holding only the cluster keys verifies header and signature with the
// target as audience, and every alteration or mismatch is refused with the
// Verify reasons; (3) only the target's key opens the box, which yields
// the original, verifiable inner envelope.
func TestSealedSnapshotHidesContentAndStaysVerifiable(t *testing.T) {
	key := testKey(1)
	x, err := NewIndex(smallState(), DefaultConfig())
	require.NoError(t, err)
	var mesh, svc string
	for _, n := range x.Nodes() {
		s, err := x.Build(n, opts(10))
		if err != nil {
			continue
		}
		if mesh == "" && s.Body.GossipKey != nil && len(s.Body.Peers) > 0 {
			mesh = n
		}
		if svc == "" && len(s.Body.Services) > 0 {
			svc = n
		}
	}
	require.NotEmpty(t, mesh, "fixture has a mesh node")
	require.NotEmpty(t, svc, "fixture has a service node")
	trusted := TrustedKeys(key.Public().(ed25519.PublicKey))
	now := t0.Add(time.Minute)
	rnd := rand.New(rand.NewSource(1))

	for i, node := range []string{mesh, svc} {
		s, err := x.Build(node, opts(10))
		require.NoError(t, err)
		sg, err := Sign(s, key, 0)
		require.NoError(t, err)
		wire, err := sg.MarshalBinary()
		require.NoError(t, err)
		priv := x25519Key(t, byte(10+i))
		sealed, err := Seal(wire, priv.PublicKey().Bytes(), key, rnd)
		require.NoError(t, err)
		require.True(t, IsSealed(sealed))

		secrets := secretsOf(s)
		require.NotEmpty(t, secrets)
		for _, sec := range secrets {
			require.True(t, bytes.Contains(wire, sec), "the plain envelope carries %q", sec)
			require.False(t, bytes.Contains(sealed, sec), "the sealed envelope leaks %q", sec)
		}
		require.False(t, bytes.Contains(sealed, []byte(`"body"`)))
		if g := s.Body.GossipKey; g != nil {
			require.False(t, bytes.Contains(sealed, g.Key), "the raw gossip key")
		}

		// The storage node's check: audience is the served node.
		e := Expect{ClusterID: "c1", NodeID: node, AppliedVersion: 5, Now: now, TrustedKeys: trusted}
		got, err := VerifySealed(sealed, e)
		require.NoError(t, err)
		require.Equal(t, uint64(10), got.Header.Version)
		require.Equal(t, node, got.Header.NodeID)

		flip := func(i int) []byte { c := bytes.Clone(sealed); c[i] ^= 1; return c }
		hdrAt := bytes.Index(sealed, []byte(`"version":10`))
		require.Positive(t, hdrAt)
		refusals := map[string]struct {
			raw []byte
			e   Expect
		}{
			ReasonBadSignature:     {flip(len(sealed) - 1), e},
			"bad_signature/header": {bytes.Replace(sealed, []byte(`"version":10`), []byte(`"version":99`), 1), e},
			ReasonUnknownKey:       {sealed, Expect{ClusterID: "c1", NodeID: node, Now: now, TrustedKeys: TrustedKeys(testKey(2).Public().(ed25519.PublicKey))}},
			ReasonWrongNode:        {sealed, Expect{ClusterID: "c1", NodeID: "someone-else", Now: now, TrustedKeys: trusted}},
			ReasonWrongCluster:     {sealed, Expect{ClusterID: "c2", NodeID: node, Now: now, TrustedKeys: trusted}},
			ReasonStaleVersion:     {sealed, Expect{ClusterID: "c1", NodeID: node, AppliedVersion: 10, Now: now, TrustedKeys: trusted}},
			ReasonExpired:          {sealed, Expect{ClusterID: "c1", NodeID: node, Now: s.ExpiresAt, TrustedKeys: trusted}},
			ReasonMalformed:        {sealed[:len(sealed)-3], e},
		}
		for want, c := range refusals {
			_, err := VerifySealed(c.raw, c.e)
			require.Error(t, err, want)
			if want == "bad_signature/header" {
				want = ReasonBadSignature
			}
			require.Equal(t, want, Reason(err), "%s: %v", want, err)
		}

		// Only the target opens it, and gets the original envelope back.
		inner, err := OpenSealed(sealed, e, priv)
		require.NoError(t, err)
		require.Equal(t, wire, inner)
		isg, err := Decode(bytes.NewReader(inner), 0)
		require.NoError(t, err)
		_, err = Verify(isg, e)
		require.NoError(t, err)
		_, err = OpenSealed(sealed, e, x25519Key(t, 99))
		require.Equal(t, ReasonMalformed, Reason(err))
	}

	// Sealing refuses a short recipient key and a bad envelope.
	_, err = Seal([]byte("RAPS"), make([]byte, 32), key, rnd)
	require.Error(t, err)
	_, err = Seal(nil, make([]byte, 31), key, rnd)
	require.ErrorIs(t, err, ErrInvalidOptions)
}

// BenchmarkSeal measures what the authority pays per served snapshot that is
// not yet in its seal cache (Seal), and what a target pays to open one
// (OpenSealed), beside signing the same snapshot (baseline: the cost every
// rebuild already pays per node).
func BenchmarkSeal(b *testing.B) {
	key := testKey(1)
	x, err := NewIndex(smallState(), DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	var s Snapshot
	for _, n := range x.Nodes() {
		if c, err := x.Build(n, opts(10)); err == nil && c.Body.GossipKey != nil {
			s = c
			break
		}
	}
	sg, err := Sign(s, key, 0)
	if err != nil {
		b.Fatal(err)
	}
	wire, _ := sg.MarshalBinary()
	priv, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		b.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(1))
	sealed, err := Seal(wire, priv.PublicKey().Bytes(), key, rnd)
	if err != nil {
		b.Fatal(err)
	}
	e := Expect{ClusterID: "c1", NodeID: s.NodeID, Now: t0.Add(time.Minute), TrustedKeys: TrustedKeys(key.Public().(ed25519.PublicKey))}
	b.Logf("snapshot envelope %d bytes, sealed %d bytes", len(wire), len(sealed))
	b.Run("baseline-sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := Sign(s, key, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			if _, err := Seal(wire, priv.PublicKey().Bytes(), key, rnd); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("verify-sealed (storage node)", func(b *testing.B) {
		for b.Loop() {
			if _, err := VerifySealed(sealed, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open-sealed (target)", func(b *testing.B) {
		for b.Loop() {
			if _, err := OpenSealed(sealed, e, priv); err != nil {
				b.Fatal(err)
			}
		}
	})
}
