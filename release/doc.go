// Package release owns the trust model and the wire format of signed
// releases (spec stage C19): the release root key set with its signature
// threshold, the root-signed set of release-signing keys (rotation and
// revocation), release manifests (product, semantic version, channel
// eligibility, one artifact per OS/architecture with sha256 and size, the
// minimum version it can upgrade from, migration bundle metadata, provenance,
// expiry), their canonical encoding, bounded decoding, verification with
// typed reasons, and streaming verification of artifact bytes.
//
// Trust chain:
//
//	Roots{Threshold: 2, Keys: r1, r2, r3}      registered by the platform owner (Raft)
//	  └─ KeySet v7 {signing: s1, s2; revoked: s0}   signed by >= Threshold roots
//	       └─ Manifest rap-node-agent 1.4.0            signed by one signing key
//	            └─ Artifact linux/amd64 sha256, size     checked while streaming
//
// The package is pure: no files, network, database or clock. Time is passed
// in (Expect.Now), randomness only enters through GenerateKey's io.Reader, and
// Decode reads only the io.Reader it is handed, never more than its limit.
// Private keys are handled only by Sign* and the key-file codec; they are
// never part of any document. The authority stores and serves documents;
// rapctl signs offline; the agent verifies before it downloads, while it
// downloads, and before it switches.
//
// Usage on an agent:
//
//	ks, err := release.VerifyKeySet(keySetEnv, roots, now, appliedKeySetVersion)
//	m, art, err := release.VerifyManifest(manifestEnv, release.Expect{
//		Product: release.ProductNodeAgent, OS: "linux", Arch: "amd64",
//		Current: "1.3.0", Now: now, KeySet: ks, Blocklist: snap.Blocklist})
//	d := release.NewDigester(art)   // io.Writer; tee the download into it
//	if err := d.Verify(); err != nil { refuse; fetch elsewhere }
//	if err != nil { log(release.Reason(err)) }
package release
