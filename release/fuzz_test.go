package release

import (
	"testing"
	"time"
)

// fuzzEnvelopes returns valid wire envelopes (a key set signed by roots 1
// and 2, two manifests signed by key 10, one declaring a service migration
// command); the seed corpus in
// testdata/fuzz/FuzzDecodeVerify holds them and mutations of them.
func fuzzEnvelopes(tb testing.TB) [][]byte {
	var out [][]byte
	withCmd := testManifest()
	withCmd.Migration.ServiceState = serviceMigration(".", 30)
	for _, e := range []Envelope{signedKeySet(tb, testKeySet(), testKey(1), testKey(2)), signedManifest(tb, testManifest(), testKey(10)),
		signedManifest(tb, withCmd, testKey(10))} {
		b, err := e.Marshal()
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzDecodeVerify feeds arbitrary bytes to Decode and then to VerifyKeySet
// or VerifyManifest: they must never panic, must fail only with this
// package's typed reasons, and whatever they accept must meet every
// expectation and re-encode to the very payload bytes.
func FuzzDecodeVerify(f *testing.F) {
	for _, b := range fuzzEnvelopes(f) {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte(`{"kind":"rap-release-manifest","payload":"e30=","signatures":[]}`))
	roots := testRoots()
	ks := verifiedKeySet(f)
	now := t0.Add(time.Minute)
	f.Fuzz(func(t *testing.T, data []byte) {
		env, err := Unmarshal(data, 64<<10)
		if err != nil {
			if r := Reason(err); r != ReasonMalformed && r != ReasonTooLarge {
				t.Fatalf("decode reason %q: %v", r, err)
			}
			return
		}
		switch env.Kind {
		case KindKeySet:
			k, err := VerifyKeySet(env, roots, now, 3)
			if err != nil {
				if Reason(err) == ReasonOther {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if k.Version < 3 || !now.Before(k.ExpiresAt) {
				t.Fatalf("accepted a key set that violates expectations: %+v", k)
			}
			p, err := EncodeKeySet(k)
			if err != nil || string(p) != string(env.Payload) {
				t.Fatalf("accepted key set does not re-encode to its payload: %v", err)
			}
		case KindManifest:
			e := Expect{Product: ProductNodeAgent, OS: "linux", Arch: "amd64", Current: "1.3.0", Now: now, KeySet: ks, Blocklist: []string{"1.3.5"}}
			m, a, err := VerifyManifest(env, e)
			if err != nil {
				if Reason(err) == ReasonOther {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			c, err := CompareVersions(m.Version, "1.3.0")
			if err != nil || c < 0 || m.Version == "1.3.5" || m.Product != ProductNodeAgent || a.OS != "linux" || a.Arch != "amd64" || !now.Before(m.ExpiresAt) {
				t.Fatalf("accepted a manifest that violates expectations: %+v", m)
			}
			p, err := EncodeManifest(m)
			if err != nil || string(p) != string(env.Payload) {
				t.Fatalf("accepted manifest does not re-encode to its payload: %v", err)
			}
		}
	})
}

// FuzzParseVersion: ParseVersion never panics, and what it accepts prints
// back to the same string and compares equal to itself.
func FuzzParseVersion(f *testing.F) {
	for _, s := range []string{"1.2.3", "1.0.0-rc.1+b.7", "01.2.3", "1.2", "0.0.0-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseVersion(s)
		if err != nil {
			if Reason(err) != ReasonMalformed {
				t.Fatalf("reason %q", Reason(err))
			}
			return
		}
		if v.String() != s || v.Compare(v) != 0 {
			t.Fatalf("round trip %q -> %q", s, v.String())
		}
	})
}
