package daemon_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/store"
)

func relKey(n byte) ed25519.PrivateKey {
	seed := make([]byte, ed25519.SeedSize)
	seed[0], seed[1] = n, 0x17
	return ed25519.NewKeyFromSeed(seed)
}

func relPub(n byte) ed25519.PublicKey { return relKey(n).Public().(ed25519.PublicKey) }

func apiErr(err error) *apiclient.Error {
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// TestVersionStorage drives release trust and version storage on three real
// authorities over the owner and agent APIs: root keys registered through
// Raft (every authority agrees; a racing replacement loses), key sets
// verified against the threshold, manifests verified against the newest key
// set, artifacts uploaded in resumable chunks, verified by streaming them
// back from PostgreSQL (a corrupted upload is discarded), and served to an
// enrolled agent over mTLS only once complete; everything audited.
func TestVersionStorage(t *testing.T) {
	g := authtest.New(t, 3)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	now := time.Now().UTC().Truncate(time.Second)

	var roots authority.RootsView
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/releases/roots", nil, &roots, nil))
	require.False(t, roots.Registered)

	// A key set before any roots: refused.
	ks1 := release.KeySet{Version: 1, SigningKeys: []release.SigningKey{{Public: relPub(10)}, {Public: relPub(12)}}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
	env1, err := release.NewKeySetEnvelope(ks1)
	require.NoError(t, err)
	env1, err = release.Sign(env1, relKey(1))
	require.NoError(t, err)
	err = owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", env1, nil, nil)
	require.Equal(t, "conflict", apiErr(err).Code)

	// Roots: 2 of 3, through Raft.
	set := authority.SetRootsRequest{Threshold: 2, Keys: [][]byte{relPub(1), relPub(2), relPub(3)}, Reason: "bootstrap"}
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/releases/roots", set, &roots, map[string]string{"Idempotency-Key": "roots-1"}))
	require.True(t, roots.Registered)
	require.Equal(t, uint64(1), roots.Version)
	require.Equal(t, release.KeyID(relPub(1)), roots.Keys[0].KeyID)
	g.Eventually(10*time.Second, "every authority holds the release roots", func() bool {
		for _, d := range g.DS {
			if r, ok := d.FSM.ReleaseRoots(); !ok || r.Version != 1 || r.Threshold != 2 {
				return false
			}
		}
		return true
	})
	// The same request again (same key) is a retry, not a second change.
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/releases/roots", set, &roots, map[string]string{"Idempotency-Key": "roots-1"}))
	require.Equal(t, uint64(1), roots.Version)
	// A replacement based on a stale version loses.
	err = owner.Do(ctx, http.MethodPut, "/v1/releases/roots", authority.SetRootsRequest{Threshold: 1, Keys: [][]byte{relPub(4)}, Reason: "race"}, nil, nil)
	require.Equal(t, "conflict", apiErr(err).Code)
	for name, bad := range map[string]authority.SetRootsRequest{
		"threshold above keys": {PrevVersion: 1, Threshold: 3, Keys: [][]byte{relPub(1), relPub(2)}, Reason: "x"},
		"short key":            {PrevVersion: 1, Threshold: 1, Keys: [][]byte{{1, 2, 3}}, Reason: "x"},
		"no reason":            {PrevVersion: 1, Threshold: 1, Keys: [][]byte{relPub(1)}},
	} {
		err := owner.Do(ctx, http.MethodPut, "/v1/releases/roots", bad, nil, nil)
		require.Equal(t, "invalid_argument", apiErr(err).Code, name)
	}

	// A follower never judges a key set (or a manifest) against its own copy of
	// the roots (it may not have applied them yet): it redirects to the
	// leader, which verifies.
	for _, d := range g.DS {
		if d.Raft.IsLeader() {
			continue
		}
		_, err := d.Auth.Releases().PublishKeySet(ctx, authority.Actor{Kind: "api-token", ID: "t"}, env1, "")
		var ae *authority.Error
		require.ErrorAs(t, err, &ae)
		require.Equal(t, authority.CodeNotLeader, ae.Code)
	}

	// Key set signed by one root: below the threshold. By two: published.
	err = owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", env1, nil, nil)
	require.Equal(t, release.ReasonThreshold, apiErr(err).Details["reason"])
	env1, err = release.Sign(env1, relKey(3))
	require.NoError(t, err)
	var ksRow store.ReleaseKeySet
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", env1, &ksRow, nil))
	require.Equal(t, uint64(1), ksRow.Version)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", env1, &ksRow, nil), "publishing the newest set again is idempotent")
	// Key set v2 revokes signing key 12.
	ks2 := ks1
	ks2.Version, ks2.SigningKeys, ks2.Revoked = 2, []release.SigningKey{{Public: relPub(10)}}, []string{release.KeyID(relPub(12))}
	env2, err := release.NewKeySetEnvelope(ks2)
	require.NoError(t, err)
	env2, err = release.Sign(env2, relKey(2))
	require.NoError(t, err)
	env2, err = release.Sign(env2, relKey(3))
	require.NoError(t, err)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", env2, &ksRow, nil))
	require.Equal(t, []string{release.KeyID(relPub(12))}, ksRow.RevokedKeyIDs)
	err = owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", env1, nil, nil)
	require.Equal(t, release.ReasonStaleKeySet, apiErr(err).Details["reason"], "an older set never comes back")

	// A manifest with a 1.2 MB artifact.
	artifact := make([]byte, 1_200_000)
	for i := range artifact {
		artifact[i] = byte(i * 7 % 251)
	}
	sum := sha256.Sum256(artifact)
	sha := hex.EncodeToString(sum[:])
	m := release.Manifest{Product: release.ProductNodeAgent, Version: "1.4.0", Channels: []release.Channel{release.ChannelCandidate},
		Artifacts:  []release.Artifact{{OS: "linux", Arch: "amd64", SHA256: sha, Size: int64(len(artifact))}},
		Provenance: release.Provenance{SourceRevision: "abc123", BuildTime: now.Add(-time.Hour)}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
	signedBy := func(m release.Manifest, k ed25519.PrivateKey) release.Envelope {
		e, err := release.NewManifestEnvelope(m)
		require.NoError(t, err)
		e, err = release.Sign(e, k)
		require.NoError(t, err)
		return e
	}
	for key, reason := range map[byte]string{20: release.ReasonUnknownKey, 12: release.ReasonRevokedKey, 1: release.ReasonUnknownKey} {
		err := owner.Do(ctx, http.MethodPost, "/v1/releases", signedBy(m, relKey(key)), nil, nil)
		require.Equal(t, reason, apiErr(err).Details["reason"], "key %d", key)
	}
	tampered := signedBy(m, relKey(10))
	tampered.Payload = bytes.Replace(tampered.Payload, []byte(`"1.4.0"`), []byte(`"1.4.1"`), 1)
	err = owner.Do(ctx, http.MethodPost, "/v1/releases", tampered, nil, nil)
	require.Equal(t, release.ReasonBadSignature, apiErr(err).Details["reason"])

	var rel authority.ReleaseView
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases", signedBy(m, relKey(10)), &rel, nil))
	require.False(t, rel.Available, "no bytes yet")
	require.Equal(t, "1.4.0", rel.Manifest.Version)
	require.Equal(t, uint64(2), rel.KeySetVersion)
	// Same version, other manifest: conflict.
	m2 := m
	m2.Provenance.SourceRevision = "def456"
	err = owner.Do(ctx, http.MethodPost, "/v1/releases", signedBy(m2, relKey(10)), nil, nil)
	require.Equal(t, "conflict", apiErr(err).Code)

	// Enroll an agent; it cannot fetch the release before its bytes are in.
	_, pin := mkClusterSnap(t, owner, "rel")
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "rel", "max_uses": 1, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "releases"}, &tok, nil))
	agent := enrollSnapAgent(t, g, pin, tok.Token, "r1", []string{"can_route_mesh"})
	err = agent.c.Do(ctx, http.MethodGet, "/v1/agent/releases/rap-node-agent/1.4.0", nil, nil, nil)
	require.Equal(t, "not_found", apiErr(err).Code)
	dl := artifactDownloader(t, agent, g)
	code, _ := dl(sha, 0)
	require.Equal(t, http.StatusNotFound, code, "incomplete bytes are never served")

	upload := func(data []byte, off int) (store.ReleaseArtifact, error) {
		var a store.ReleaseArtifact
		err := owner.Do(ctx, http.MethodPut, fmt.Sprintf("/v1/releases/artifacts/%s/chunks/%d", sha, off), map[string]any{"data": data}, &a, nil)
		return a, err
	}
	const chunk = 400_000
	// First a corrupted upload: one byte flipped in the last chunk.
	bad := bytes.Clone(artifact)
	bad[len(bad)-5] ^= 1
	for off := 0; off < len(bad); off += chunk {
		a, err := upload(bad[off:min(off+chunk, len(bad))], off)
		if off+chunk < len(bad) {
			require.NoError(t, err)
			require.Equal(t, int64(off+chunk), a.Received)
			continue
		}
		require.Equal(t, release.ReasonArtifactMismatch, apiErr(err).Details["reason"])
	}
	var st store.ReleaseArtifact
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/releases/artifacts/"+sha, nil, &st, nil))
	require.Zero(t, st.Received, "discarded")
	require.False(t, st.Complete)

	// The real upload, interrupted and resumed.
	_, err = upload(artifact[:chunk], 0)
	require.NoError(t, err)
	_, err = upload(artifact[2*chunk:], 2*chunk)
	require.Equal(t, "conflict", apiErr(err).Code, "a gap is refused")
	require.EqualValues(t, chunk, apiErr(err).Details["received"])
	_, err = upload(artifact[:chunk], 0)
	require.NoError(t, err, "a chunk sent twice is acknowledged")
	_, err = upload(make([]byte, authority.DefaultReleaseChunkSize+1), chunk)
	require.Equal(t, "invalid_argument", apiErr(err).Code, "chunk too large")
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/releases/artifacts/"+sha, nil, &st, nil))
	for off := int(st.Received); off < len(artifact); off += chunk {
		st, err = upload(artifact[off:min(off+chunk, len(artifact))], off)
		require.NoError(t, err)
	}
	require.True(t, st.Complete)
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/releases/rap-node-agent@1.4.0", nil, &rel, nil))
	require.True(t, rel.Available)
	require.True(t, rel.Platforms[0].Complete)

	// The agent fetches manifest and key set, verifies them against the
	// roots, and downloads the bytes over mTLS (whole, and resumed).
	var ar authority.AgentRelease
	require.NoError(t, agent.c.Do(ctx, http.MethodGet, "/v1/agent/releases/rap-node-agent/1.4.0", nil, &ar, nil))
	kse, err := release.Unmarshal(ar.KeySet, 0)
	require.NoError(t, err)
	vks, err := release.VerifyKeySet(kse, release.Roots{Threshold: 2, Keys: []ed25519.PublicKey{relPub(1), relPub(2), relPub(3)}}, time.Now(), 0)
	require.NoError(t, err)
	require.Equal(t, uint64(2), vks.Version)
	me, err := release.Unmarshal(ar.Manifest, 0)
	require.NoError(t, err)
	_, art, err := release.VerifyManifest(me, release.Expect{Product: release.ProductNodeAgent, OS: "linux", Arch: "amd64", Current: "1.3.0", Now: time.Now(), KeySet: vks})
	require.NoError(t, err)
	code, body := dl(sha, 0)
	require.Equal(t, http.StatusOK, code)
	d := release.NewDigester(art)
	_, err = d.Write(body)
	require.NoError(t, err)
	require.NoError(t, d.Verify())
	code, body = dl(sha, 1_000_000)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, artifact[1_000_000:], body)
	code, _ = dl(hex.EncodeToString(make([]byte, 32)), 0)
	require.Equal(t, http.StatusNotFound, code)

	// The owner's credential does not open agent routes, nor the agent's owner routes.
	err = owner.Do(ctx, http.MethodGet, "/v1/agent/releases/rap-node-agent/1.4.0", nil, nil, nil)
	require.Equal(t, "unauthenticated", apiErr(err).Code)
	err = agent.c.Do(ctx, http.MethodGet, "/v1/releases", nil, nil, nil)
	require.Equal(t, "forbidden", apiErr(err).Code)

	var list struct {
		Items []store.Release `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/releases?product=rap-node-agent", nil, &list, nil))
	require.Len(t, list.Items, 1)

	// Everything that changed state is audited (refusals too).
	for action, outcome := range map[string]string{"release.roots.set": "ok", "release.keyset.publish": "ok", "release.publish": "ok",
		"release.artifact.complete": "ok", "release.artifact.reject": "ok"} {
		var n int
		require.NoError(t, g.DS[0].DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = $1 AND outcome = $2`, action, outcome).Scan(&n))
		require.Positive(t, n, action)
	}
	var refused int
	require.NoError(t, g.DS[0].DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action IN ('release.publish', 'release.keyset.publish') AND outcome <> 'ok'`).Scan(&refused))
	require.GreaterOrEqual(t, refused, 4)
}

// artifactDownloader returns a function that GETs an artifact as the agent
// (node certificate, pinned cluster CA) from whichever authority answers.
func artifactDownloader(t *testing.T, a *snapAgent, g *authtest.Group) func(sha string, offset int64) (int, []byte) {
	cpin, err := pki.PinDER(a.caCert)
	require.NoError(t, err)
	tc := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: httpapi.ServerNameForCluster(a.cluster), InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error { return apiclient.VerifyPinnedChain(cs.PeerCertificates, cpin) },
		Certificates:     []tls.Certificate{{Certificate: [][]byte{a.cert}, PrivateKey: a.priv}}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}, Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return func(sha string, offset int64) (int, []byte) {
		resp, err := hc.Get(fmt.Sprintf("https://%s/v1/agent/releases/artifacts/%s?offset=%d", g.DS[0].APIAddr(), sha, offset))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, b
	}
}
