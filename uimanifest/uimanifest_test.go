package uimanifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func valid(t *testing.T) []byte {
	t.Helper()
	return ClusterAdminJSON()
}

func TestClusterAdminManifestDecodes(t *testing.T) {
	m, err := ClusterAdmin()
	require.NoError(t, err)
	require.Equal(t, Schema, m.Schema)
	require.NotNil(t, m.Page("groups"))
	require.Nil(t, m.Page("nope"))
	enc, err := m.Encode()
	require.NoError(t, err)
	again, err := Decode(enc)
	require.NoError(t, err)
	require.Equal(t, m, again)
}

// mutate decodes the built-in manifest loosely, applies f and re-encodes.
func mutate(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(valid(t), &m))
	f(m)
	raw, err := json.Marshal(m)
	require.NoError(t, err)
	return raw
}

func page0(m map[string]any) map[string]any { return m["pages"].([]any)[0].(map[string]any) }
func field0(m map[string]any) map[string]any {
	return page0(m)["widgets"].([]any)[0].(map[string]any)["fields"].([]any)[0].(map[string]any)
}

func TestDecodeRefuses(t *testing.T) {
	cases := map[string][]byte{
		"unknown top-level field (peer cache)": mutate(t, func(m map[string]any) { m["peer_cache"] = []any{"10.0.0.1:7946"} }),
		"unknown page field (script)":          mutate(t, func(m map[string]any) { page0(m)["script"] = "alert(1)" }),
		"unknown field field (value)":          mutate(t, func(m map[string]any) { field0(m)["value"] = "x" }),
		"topology key endpoints":               mutate(t, func(m map[string]any) { field0(m)["key"] = "endpoints" }),
		"topology key peer_id":                 mutate(t, func(m map[string]any) { field0(m)["key"] = "peer_id" }),
		"topology key hostname":                mutate(t, func(m map[string]any) { field0(m)["key"] = "hostname" }),
		"topology key public_ip":               mutate(t, func(m map[string]any) { field0(m)["key"] = "public_ip" }),
		"topology key noise_public_key":        mutate(t, func(m map[string]any) { field0(m)["key"] = "noise_public_key" }),
		"topology key routes":                  mutate(t, func(m map[string]any) { field0(m)["key"] = "routes" }),
		"cache key route_cache":                mutate(t, func(m map[string]any) { field0(m)["key"] = "route_cache" }),
		"secret key gossip_key":                mutate(t, func(m map[string]any) { field0(m)["key"] = "gossip_key" }),
		"secret key password":                  mutate(t, func(m map[string]any) { field0(m)["key"] = "password" }),
		"credential key session_token":         mutate(t, func(m map[string]any) { field0(m)["key"] = "session_token" }),
		"widget type html":                     mutate(t, func(m map[string]any) { page0(m)["widgets"].([]any)[0].(map[string]any)["type"] = "html" }),
		"field type script":                    mutate(t, func(m map[string]any) { field0(m)["type"] = "script" }),
		"markup in label":                      mutate(t, func(m map[string]any) { field0(m)["label"] = "<img src=x onerror=alert(1)>" }),
		"javascript url in title":              mutate(t, func(m map[string]any) { m["title"] = "javascript:alert(1)" }),
		"template in title":                    mutate(t, func(m map[string]any) { m["title"] = "{{.Secret}}" }),
		"control char in title":                mutate(t, func(m map[string]any) { m["title"] = "a\x07b" }),
		"agent route source":                   mutate(t, func(m map[string]any) { page0(m)["source"] = "/v1/agent/snapshot" }),
		"other placeholder":                    mutate(t, func(m map[string]any) { page0(m)["source"] = "/v1/clusters/{cluster}/nodes/{id}" }),
		"absolute url source":                  mutate(t, func(m map[string]any) { page0(m)["source"] = "https://evil.example/v1/clusters/{cluster}" }),
		"dot-dot source":                       mutate(t, func(m map[string]any) { page0(m)["source"] = "/v1/clusters/{cluster}/../../v1/admin/users" }),
		"wrong schema":                         mutate(t, func(m map[string]any) { m["schema"] = 2 }),
		"no pages":                             mutate(t, func(m map[string]any) { m["pages"] = []any{} }),
		"duplicate page id": mutate(t, func(m map[string]any) {
			ps := m["pages"].([]any)
			ps[1].(map[string]any)["id"] = ps[0].(map[string]any)["id"]
		}),
		"form without action": mutate(t, func(m map[string]any) {
			w := page0(m)["widgets"].([]any)[0].(map[string]any)
			w["type"] = "form"
			for _, f := range w["fields"].([]any) {
				f.(map[string]any)["type"] = "text"
			}
		}),
		"action on a table": mutate(t, func(m map[string]any) {
			page0(m)["widgets"].([]any)[0].(map[string]any)["action"] = map[string]any{"method": "POST", "path": "/v1/clusters/{cluster}/groups"}
		}),
		"unknown role shape": mutate(t, func(m map[string]any) { m["requires_roles"] = []any{"Admin Ingress"} }),
		"too many pages": mutate(t, func(m map[string]any) {
			ps := m["pages"].([]any)
			for len(ps) <= MaxPages {
				p := map[string]any{}
				raw, _ := json.Marshal(ps[0])
				_ = json.Unmarshal(raw, &p)
				p["id"] = "p" + strings.Repeat("x", len(ps))
				ps = append(ps, p)
			}
			m["pages"] = ps
		}),
		"duplicate key":  []byte(`{"schema":1,"schema":1,"title":"t","pages":[]}`),
		"trailing data":  append(valid(t), []byte(` {}`)...),
		"not an object":  []byte(`[1,2,3]`),
		"empty":          []byte(``),
		"too deep":       []byte(`{"schema":[[[[[[[[[[1]]]]]]]]]]}`),
		"too large":      append(bytes.Repeat([]byte(" "), MaxBytes), valid(t)...),
		"long title":     mutate(t, func(m map[string]any) { m["title"] = strings.Repeat("a", MaxTextLen+1) }),
		"code via field": mutate(t, func(m map[string]any) { field0(m)["key"] = "eval" }),
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := Decode(raw)
			require.Error(t, err)
			require.Nil(t, m)
			require.True(t, errors.Is(err, ErrInvalid), "typed error: %v", err)
		})
	}
}

func TestForbiddenKey(t *testing.T) {
	for _, k := range []string{"endpoints", "endpoint", "peer_id", "peers", "ip", "public_ip", "hostname", "addr", "mesh_routes", "gossip_key", "token", "ca_pin_secret", "private_key", "certificate_pem", "ipv4_prefix"} {
		require.True(t, ForbiddenKey(k), k)
	}
	for _, k := range []string{"name", "status", "node_id", "membership_status", "reported_state", "description", "created_at", "role", "applied_version", "lagging"} {
		require.False(t, ForbiddenKey(k), k)
	}
}

func TestTestdataCases(t *testing.T) {
	for _, dir := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		require.NoError(t, err)
		require.NotEmpty(t, files, dir)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			_, err = Decode(raw)
			if dir == "valid" {
				require.NoError(t, err, f)
			} else {
				require.ErrorIs(t, err, ErrInvalid, f)
			}
		}
	}
}

// FuzzDecode: Decode never panics; whatever it accepts validates, and its
// canonical encoding decodes to the same manifest.
func FuzzDecode(f *testing.F) {
	f.Add(ClusterAdminJSON())
	f.Add([]byte(`{"schema":1}`))
	f.Add([]byte(`{"schema":1,"schema":2}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Decode(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted but invalid: %v", err)
		}
		enc, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decode(enc)
		if err != nil {
			t.Fatalf("canonical form refused: %v", err)
		}
		e2, _ := again.Encode()
		if !bytes.Equal(enc, e2) {
			t.Fatalf("not canonical")
		}
		for _, p := range m.Pages {
			for _, w := range p.Widgets {
				for _, fl := range w.Fields {
					if ForbiddenKey(fl.Key) {
						t.Fatalf("forbidden key %q accepted", fl.Key)
					}
				}
			}
		}
	})
}
