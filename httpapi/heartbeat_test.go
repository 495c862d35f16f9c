package httpapi

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/domain"
)

// heartbeatBodies are heartbeat bodies the route must decode exactly as
// decodeJSON does: what agents send, and the corners.
func heartbeatBodies() []string {
	agent, _ := json.Marshal(authority.HeartbeatInput{Seq: 42, SentAt: time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), AgentVersion: "v1.2.3",
		AppliedVersion: 7, State: "normal", Health: json.RawMessage(`{"status":"ok","checks":[{"n":"a","ok":true}]}`),
		Services: json.RawMessage(`[{"type":"relay","state":"running"}]`), Capabilities: []domain.Capability{"can_route_mesh"},
		Facts:    json.RawMessage(`{"hostname":"h","os":"linux"}`),
		LastPing: &agentapi.PingReport{Destination: "n2", Path: []string{"n1", "r1", "n2"}, Reverse: []string{"n2", "r1", "n1"}, RTTMs: 1.25, At: time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)}})
	local, _ := json.Marshal(authority.HeartbeatInput{Seq: 1, SentAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.FixedZone("", 2*3600))})
	return []string{
		string(agent), string(local),
		``, `   `, `{}`, ` { } `, `null`, `[]`, `5`, `"x"`, `{"seq":1}{"seq":2}`, `{"seq":1} x`, `{} ]`, `{"seq":1,}`, `{"seq":1`,
		`{"seq":1,"seq":2}`, `{"Seq":3}`, `{"SEQ":3}`, `{"se\u0071":3}`, `{"unknown":1}`, `{"seq":1,"unknown":{}}`,
		`{"seq":1.0}`, `{"seq":1e3}`, `{"seq":-5}`, `{"seq":-0}`, `{"seq":999999999999999999}`, `{"seq":9223372036854775807}`,
		`{"seq":99999999999999999999}`, `{"seq":"5"}`, `{"seq":null}`, `{"seq":true}`, `{"applied_version":12,"seq":3}`,
		`{"sent_at":"2030-01-01T00:00:00Z"}`, `{"sent_at":"2030-01-01T00:00:00.123456789+02:00"}`, `{"sent_at":"bad"}`,
		`{"sent_at":null}`, `{"sent_at":"2030-01-01T00:00:00+00:00"}`, `{"sent_at":"2030-01-01T00:00:00\u005a"}`, `{"sent_at":12}`, `{"sent_at":"2030-01-01 00:00:00Z"}`,
		`{"agent_version":"v1\n"}`, `{"agent_version":"é"}`, "{\"agent_version\":\"\xff\"}", `{"agent_version":null}`,
		`{"agent_version":""}`, `{"agent_version":` + `"` + strings.Repeat("v", 120) + `"}`, `{"agent_version":1}`,
		`{"state":"degraded"}`, `{"state":"weird"}`, `{"state":""}`, `{"state":null}`,
		`{"health":{"a":[1,2,{"b":"c\"}]"}]}}`, `{"health":null}`, `{"health":"str"}`, `{"health":  [ 1 , 2 ] , "services":[]}`,
		`{"health":{"s":"\\"},"seq":2}`, `{"health":1.5e3,"facts":true}`, `{"health":{},"health":{"x":1}}`,
		`{"services":[{"a":{"b":[[]]}}],"seq":1}`, `{"facts":{"hostname":"h"}}`, `{"facts":null,"seq":9}`,
		`{"capabilities":[]}`, `{"capabilities":[ ]}`, `{"capabilities":null}`, `{"capabilities":["can_route_mesh","x"]}`,
		`{"capabilities":[1]}`, `{"capabilities":[null]}`, `{"capabilities":"x"}`, `{"capabilities":["a\u0062"]}`,
		`{"health":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
		"\n{\t\"seq\" :\r1 ,\n\"state\": \"normal\"\n}\n",
		`{"updates":[]}`, `{"updates":null}`, `{"updates":[{}]}`, `{"updates":[{"product":"rap-node-agent","current_version":"1.2.0","state":"idle"}]}`,
		`{"updates":[{"product":"a","product":"b"}]}`, `{"updates":[{"Product":"a"}]}`, `{"updates":[{"product":1}]}`, `{"updates":[{"product":"a","x":1}]}`,
		`{"updates":[{"product":"a"},]}`, `{"updates":{}}`, `{"seq":1,"last_ping":{"rtt_ms":3}}`, `{"seq":1,"load1":0.5,"load5":1}`,
		`{"health":{"a":"\u00e9\ud83d\ude00"}}`, `{"health":{"a":"\x"}}`, `{"health":[01]}`, `{"health":[-]}`, `{"health":[1.]}`, `{"health":[1e]}`,
		`{"health":[-0.5e+7, 1E-2, 0]}`, `{"health":[tru]}`, `{"health":{"a" 1}}`, `{"health":{1:2}}`, `{"seq":01}`, `{"seq":-}`,
		`{"seq":9223372036854775808}`, `{"seq":-9223372036854775808}`, `{"sent_at":"2030-02-30T00:00:00Z"}`, `{"state":"a\"b"}`,
		`{"last_ping":null}`, `{"last_ping":{}}`, `{"last_ping":"x"}`, `{"last_ping":{"path":"n1"}}`,
		`{"last_ping":{"destination":"n2","path":["n1","n2"],"rtt_ms":0.5,"at":"2030-01-01T00:00:00Z"},"seq":4}`,
	}
}

// sameHeartbeat compares two decoded heartbeats field by field (time zones by
// offset and instant; nil and empty raw values and slices told apart).
func sameHeartbeat(t *testing.T, want, got authority.HeartbeatInput, body string) {
	t.Helper()
	require.Equal(t, want.Seq, got.Seq, body)
	require.Equal(t, want.AppliedVersion, got.AppliedVersion, body)
	require.Equal(t, want.AgentVersion, got.AgentVersion, body)
	require.Equal(t, want.State, got.State, body)
	require.True(t, want.SentAt.Equal(got.SentAt), body)
	require.Equal(t, want.SentAt.UTC().Format(time.RFC3339Nano), got.SentAt.Format(time.RFC3339Nano), body)
	require.Equal(t, time.UTC, got.SentAt.Location(), "decoded times are in UTC: %s", body)
	require.Equal(t, want.SentAt.IsZero(), got.SentAt.IsZero(), body)
	for _, f := range [][2]json.RawMessage{{want.Health, got.Health}, {want.Services, got.Services}, {want.Facts, got.Facts}} {
		require.Equal(t, f[0] == nil, f[1] == nil, body)
		require.Equal(t, string(f[0]), string(f[1]), body)
	}
	require.True(t, reflect.DeepEqual(want.Capabilities, got.Capabilities), "%s: %#v vs %#v", body, want.Capabilities, got.Capabilities)
	require.True(t, reflect.DeepEqual(want.Updates, got.Updates), "%s: %#v vs %#v", body, want.Updates, got.Updates)
	// Every field, whatever agentapi.Heartbeat holds by now (times compared
	// above).
	w, g := want, got
	w.SentAt, g.SentAt = time.Time{}, time.Time{}
	require.True(t, reflect.DeepEqual(w, g), "%s: %#v vs %#v", body, w, g)
	require.True(t, reflect.DeepEqual(want.LastPing, got.LastPing), "%s: %#v vs %#v", body, want.LastPing, got.LastPing)
}

func checkHeartbeatDecode(t *testing.T, body string) {
	var want authority.HeartbeatInput
	wantErr := decodeJSON(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, agentapi.PathHeartbeat, strings.NewReader(body)), &want)
	got, gotErr := decodeHeartbeat(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, agentapi.PathHeartbeat, strings.NewReader(body)))
	if wantErr != nil {
		require.Error(t, gotErr, body)
		require.Equal(t, wantErr.Error(), gotErr.Error(), body)
		require.Equal(t, authority.CodeOf(wantErr), authority.CodeOf(gotErr), body)
		return
	}
	require.NoError(t, gotErr, body)
	sameHeartbeat(t, want, got, body)

	// What the route keeps never aliases its (pooled, reused) body buffer:
	// decode another body of the same size through the same pool, then
	// compare again.
	other := strings.Repeat(" ", len(body))
	_, _ = decodeHeartbeat(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, agentapi.PathHeartbeat, strings.NewReader(other)))
	sameHeartbeat(t, want, got, body)
}

func TestDecodeHeartbeatMatchesEncodingJSON(t *testing.T) {
	for _, body := range heartbeatBodies() {
		checkHeartbeatDecode(t, body)
	}
	big := `{"health":{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}}`
	_, err := decodeHeartbeat(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, agentapi.PathHeartbeat, strings.NewReader(big)))
	require.Equal(t, authority.CodeTooLarge, authority.CodeOf(err))
}

// TestLeanDecodeOverSeeds: random heartbeats as agents marshal them (every
// field, random content), and random corruptions of them, decode exactly as
// encoding/json decodes them; the well-formed ones take the lean path.
func TestLeanDecodeOverSeeds(t *testing.T) {
	for seed := uint64(1); seed <= 300; seed++ {
		rng := rand.New(rand.NewPCG(seed, 24))
		body := randomHeartbeatBody(rng)
		_, ok := leanHeartbeat(body)
		require.True(t, ok, "the lean decoder takes what agents send: %s", body)
		checkHeartbeatDecode(t, string(body))
		for range 8 {
			b := bytes.Clone(body)
			switch rng.IntN(3) {
			case 0: // flip one byte to a JSON-significant one
				const sig = `{}[],:"\ 0-.eEtfn`
				b[rng.IntN(len(b))] = sig[rng.IntN(len(sig))]
			case 1: // cut
				b = b[:rng.IntN(len(b))]
			case 2: // insert
				i := rng.IntN(len(b))
				b = append(b[:i], append([]byte(`,"x":1`[:1+rng.IntN(6)]), b[i:]...)...)
			}
			checkHeartbeatDecode(t, string(b))
		}
	}
}

// TestLeanDecodeFallsBackOnUnknownFields: a field the lean decoder does not
// know (last_ping, load figures: fields other changes add to the heartbeat)
// is left to encoding/json, never refused by the lean decoder itself.
func TestLeanDecodeFallsBackOnUnknownFields(t *testing.T) {
	for _, body := range []string{`{"seq":1,"last_ping":{"peer":"n2","rtt_ms":1.5}}`, `{"load1":0.25,"seq":2}`, `{"updates":[{"product":"p","current_version":"1","state":"idle","eta":"x"}]}`} {
		_, ok := leanHeartbeat([]byte(body))
		require.False(t, ok, body)
		checkHeartbeatDecode(t, body)
	}
}

func randomHeartbeatBody(rng *rand.Rand) []byte {
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyz0123456789-._ é"
		r := []rune(letters)
		n := rng.IntN(12)
		out := make([]rune, n)
		for i := range out {
			out[i] = r[rng.IntN(len(r))]
		}
		return string(out)
	}
	hb := authority.HeartbeatInput{Seq: rng.Int64N(1 << 40), AppliedVersion: rng.Int64N(1000), AgentVersion: word(), State: []string{"", "normal", "degraded"}[rng.IntN(3)],
		SentAt: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("", (rng.IntN(27)-12)*3600))}
	if rng.IntN(4) > 0 {
		h := map[string]any{"status": word(), "consecutive_errors": rng.IntN(5), "uptime_seconds": rng.Int64N(1e6), "x": []any{1.5, true, nil, word(), map[string]any{"q": "\"\n"}}}
		hb.Health, _ = json.Marshal(h)
	}
	if rng.IntN(2) == 0 {
		hb.Services, _ = json.Marshal([]map[string]any{{"type": word(), "state": "running", "n": rng.IntN(9)}})
	}
	if rng.IntN(3) == 0 {
		hb.Facts, _ = json.Marshal(map[string]any{"hostname": word(), "cpus": rng.IntN(64), "endpoints": []string{word(), word()}})
		hb.Capabilities = []domain.Capability{"can_route_mesh", domain.Capability(word())}
	}
	if rng.IntN(2) == 0 {
		hb.Updates = []agentapi.UpdateReport{{Product: "rap-node-agent", CurrentVersion: word(), TargetVersion: word(), State: "idle", LastFailure: word(), PreviousVersion: word()}}
	}
	b, _ := json.Marshal(hb)
	return b
}

// FuzzDecodeHeartbeat checks that the heartbeat route decodes every body as
// decodeJSON (encoding/json) does: same value or same error.
func FuzzDecodeHeartbeat(f *testing.F) {
	for _, b := range heartbeatBodies() {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkHeartbeatDecode(t, string(body))
	})
}

// TestHeartbeatFastPathMatchesTheRouter checks that Handler's fast path
// serves exactly the requests for which the router picks the heartbeat
// route, with the router's handler.
func TestHeartbeatFastPathMatchesTheRouter(t *testing.T) {
	s := New(Options{})
	hot := s.router.Get(heartbeatRoute)
	require.NotNil(t, hot)
	var m mux.RouteMatch
	require.True(t, s.router.Match(httptest.NewRequest(http.MethodPost, agentapi.PathHeartbeat, nil), &m))
	require.Nil(t, m.MatchErr)
	require.Same(t, hot, m.Route, "the router picks the named heartbeat route")
	tpl, err := hot.GetPathTemplate()
	require.NoError(t, err)
	require.Equal(t, agentapi.PathHeartbeat, tpl)
	methods, err := hot.GetMethods()
	require.NoError(t, err)
	require.Equal(t, []string{http.MethodPost}, methods)

	// Other methods and paths still go through the router.
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, agentapi.PathHeartbeat, nil),
		httptest.NewRequest(http.MethodPost, agentapi.PathHeartbeat+"/", nil),
		httptest.NewRequest(http.MethodPost, "/v1/agent//heartbeat", nil),
	} {
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		s.router.ServeHTTP(want, req)
		s.Handler().ServeHTTP(got, req)
		require.Equal(t, want.Code, got.Code, req.Method+" "+req.URL.Path)
		require.Equal(t, want.Body.String(), got.Body.String())
	}
	// Without a client certificate the fast path answers as the router does.
	want, got := httptest.NewRecorder(), httptest.NewRecorder()
	s.router.ServeHTTP(want, jsonRequest(http.MethodPost, agentapi.PathHeartbeat, `{}`))
	s.Handler().ServeHTTP(got, jsonRequest(http.MethodPost, agentapi.PathHeartbeat, `{}`))
	require.Equal(t, http.StatusUnauthorized, got.Code)
	require.Equal(t, want.Code, got.Code)
	require.Equal(t, want.Header(), got.Header())
	require.Equal(t, want.Body.String(), got.Body.String())
}

// TestHeartbeatRouteMetrics checks that the hot route records the same series
// as wrap: requests by route and numeric status code, latency by route.
func TestHeartbeatRouteMetrics(t *testing.T) {
	s := New(Options{})
	for range 3 {
		s.Handler().ServeHTTP(httptest.NewRecorder(), jsonRequest(http.MethodPost, agentapi.PathHeartbeat, `{}`))
	}
	mfs, err := s.Registry().Gather()
	require.NoError(t, err)
	found := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "rap_api_requests_total":
				require.Equal(t, map[string]string{"route": "agent.heartbeat", "code": "401"}, labels)
				require.Equal(t, 3.0, m.GetCounter().GetValue())
				found[mf.GetName()] = true
			case "rap_api_request_duration_seconds":
				require.Equal(t, map[string]string{"route": "agent.heartbeat"}, labels)
				require.Equal(t, uint64(3), m.GetHistogram().GetSampleCount())
				found[mf.GetName()] = true
			}
		}
	}
	require.Len(t, found, 2)
}

// jsonRequest is a test request with a JSON body, declared as such.
func jsonRequest(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}
