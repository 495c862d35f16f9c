package integration

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// enrollForConsole joins and approves one node through the authority and
// returns its id.
func enrollForConsole(t *testing.T, a *authority.Authority, clusterID, token, name string) string {
	t.Helper()
	ctx := context.Background()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte(name))
	st, err := a.SubmitJoinRequest(ctx, "127.0.0.1", clusterID, authority.JoinRequestInput{
		Token: token, NodeName: name, HostFingerprint: hex.EncodeToString(h[:]), PublicKey: priv.Public().(ed25519.PublicKey),
		NoisePublicKey: nk.PublicKey().Bytes(), Facts: json.RawMessage(`{"os":"linux"}`),
		Capabilities: []domain.Capability{"can_route_mesh", "can_accept_node_ingress"}, PollSecret: poll})
	require.NoError(t, err)
	res, err := a.ApproveJoinRequest(ctx, authority.Actor{ID: "test", Kind: "system"}, st.RequestID, "")
	require.NoError(t, err)
	return res.NodeID
}

// consoleSession logs the owner in over the JSON API and returns a client
// holding the session cookie.
func consoleSession(t *testing.T, srv *httptest.Server, user, password, code string) *http.Client {
	t.Helper()
	c := srv.Client()
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	c.Jar = jar
	body, _ := json.Marshal(map[string]string{"username": user, "password": password, "totp_code": code})
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/v1/auth/login", strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-RAP-Request", "console")
	res, err := c.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	return c
}

func getPage(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	res, err := c.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	require.NotContains(t, res.Request.URL.Path, "/login", "the session holds")
	return string(b)
}

type hbClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *hbClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *hbClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// TestConsoleDrawsTopologyAndHealth renders the console's pictures from a
// real authority and PostgreSQL: three enrolled agents (one a relay) with
// seeded link reports get a topology SVG with a node per agent and a line per
// reported link, coloured by state; a node's heartbeat history becomes a
// health strip of StripBuckets cells, with the buckets that saw heartbeats
// marked normal or degraded.
func TestConsoleDrawsTopologyAndHealth(t *testing.T) {
	adminClock := &consoleClock{t: time.Now()}
	hb := &hbClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: adminClock.Now}
		c.Heartbeats.Clock = hb.Now
	})
	d := g.Leader(15 * time.Second)
	a := d.Auth
	ctx := context.Background()
	ad := a.Admin()
	_, _, err := ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	const password = "console draw password"
	secret, err := ad.DemoEnroll(ctx, "owner", password)
	require.NoError(t, err)

	sys := authority.Actor{ID: "test", Kind: "system"}
	cl, err := a.CreateCluster(ctx, sys, authority.CreateClusterRequest{Name: "Demo", Slug: "demo"}, "")
	require.NoError(t, err)
	tok, err := a.CreateJoinToken(ctx, sys, authority.CreateTokenRequest{Cluster: "demo", MaxUses: 3}, "")
	require.NoError(t, err)
	ids := map[string]string{}
	for _, n := range []string{"edge-a", "edge-b", "relay-c"} {
		ids[n] = enrollForConsole(t, a, cl.ID, tok.Token, n)
	}
	_, err = a.AssignRole(ctx, sys, cl.ID, ids["relay-c"], authority.AssignRoleRequest{Role: domain.RoleRelayNode}, "")
	require.NoError(t, err)

	// Link reports: a↔b up and fast, a→c up and slow, c→b down (4 links).
	report := func(from string, links ...agentapi.LinkStatus) {
		_, err := a.ReportLinks(ctx, authority.NodePrincipal{ClusterID: cl.ID, NodeID: ids[from]}, authority.LinkReportInput{Links: links})
		require.NoError(t, err)
	}
	report("edge-a", agentapi.LinkStatus{PeerNodeID: ids["edge-b"], State: "up", RTTMs: 2.5, Set: "core"},
		agentapi.LinkStatus{PeerNodeID: ids["relay-c"], State: "up", RTTMs: 180, Set: "relay"})
	report("edge-b", agentapi.LinkStatus{PeerNodeID: ids["edge-a"], State: "up", RTTMs: 2.7, Set: "core"})
	report("relay-c", agentapi.LinkStatus{PeerNodeID: ids["edge-b"], State: "down", Set: "core", Loss: 1})

	// Heartbeat history of edge-a: two in one bucket 50 minutes ago, one
	// degraded 20 minutes ago, one in the current bucket.
	now := time.Now()
	w := 2 * time.Minute
	b50 := now.Add(-50 * time.Minute).Truncate(w)
	p := authority.NodePrincipal{ClusterID: cl.ID, NodeID: ids["edge-a"], SourceAddr: "127.0.0.1"}
	seq := int64(0)
	beat := func(at time.Time, state string) {
		seq++
		hb.set(at)
		_, err := a.Heartbeats().Ingest(p, authority.HeartbeatInput{Seq: seq, SentAt: at, AgentVersion: "test", State: state})
		require.NoError(t, err)
		require.NoError(t, a.Heartbeats().Flush(ctx))
	}
	beat(b50.Add(10*time.Second), "normal")
	beat(b50.Add(70*time.Second), "normal")
	beat(now.Add(-20*time.Minute).Truncate(w).Add(30*time.Second), "degraded")
	beat(now.Truncate(w).Add(time.Second), "normal")
	hb.set(now.Truncate(w).Add(2 * time.Second))
	_, err = a.Heartbeats().Ingest(authority.NodePrincipal{ClusterID: cl.ID, NodeID: ids["edge-b"], SourceAddr: "127.0.0.1"},
		authority.HeartbeatInput{Seq: 1, AgentVersion: "test", State: "normal", LastPing: &agentapi.PingReport{Destination: ids["edge-a"],
			Path: []string{ids["edge-b"], ids["relay-c"], ids["edge-a"]}, RTTMs: 3.5, At: now.Add(-time.Minute)}})
	require.NoError(t, err)
	require.NoError(t, a.Heartbeats().Flush(ctx))

	srv := httptest.NewUnstartedServer(d.API.Handler())
	srv.StartTLS()
	defer srv.Close()
	c := consoleSession(t, srv, "owner", password, adminClock.code(t, secret))

	// Topology: a node per agent, a line per reported link, the relay marked.
	page := getPage(t, c, srv.URL+"/console/topology?cluster=demo")
	require.Contains(t, page, `aria-current="page">Topology`)
	svg := regexp.MustCompile(`(?s)<figure id="topology-demo">(.*?)</figure>`).FindStringSubmatch(page)
	require.NotNil(t, svg, "the demo cluster has a topology figure")
	nodes := regexp.MustCompile(`<g class="node" data-node-id="([^"]+)" data-kind="agent" data-relay="(true|false)" data-ping-path="(true|false)">`).FindAllStringSubmatch(svg[1], -1)
	require.Len(t, nodes, 3, "a node per agent")
	relays, onPath := map[string]bool{}, map[string]bool{}
	for _, n := range nodes {
		relays[n[1]] = n[2] == "true"
		onPath[n[1]] = n[3] == "true"
	}
	require.Equal(t, map[string]bool{ids["edge-a"]: false, ids["edge-b"]: false, ids["relay-c"]: true}, relays)
	// edge-b's last mesh ping (carried by its heartbeat) went through the
	// relay: the path is highlighted hop by hop.
	require.Equal(t, map[string]bool{ids["edge-a"]: true, ids["edge-b"]: true, ids["relay-c"]: true}, onPath)
	hops := regexp.MustCompile(`<line class="ping-hop" data-from="([^"]+)" data-to="([^"]+)"`).FindAllStringSubmatch(svg[1], -1)
	require.Len(t, hops, 2)
	require.Equal(t, []string{ids["edge-b"], ids["relay-c"]}, hops[0][1:])
	require.Equal(t, []string{ids["relay-c"], ids["edge-a"]}, hops[1][1:])
	require.Contains(t, svg[1], "last mesh ping edge-b → relay-c → edge-a, RTT 3.5 ms")
	links := regexp.MustCompile(`<line class="link" data-from="([^"]+)" data-to="([^"]+)" data-state="([^"]+)"[^>]* stroke="(#[0-9a-f]+)"`).FindAllStringSubmatch(svg[1], -1)
	require.Len(t, links, 4, "a line per reported link")
	colour := map[string]string{}
	for _, l := range links {
		colour[l[1]+">"+l[2]] = l[3] + " " + l[4]
	}
	require.Equal(t, "up #1e7d32", colour[ids["edge-a"]+">"+ids["edge-b"]], "fast up link is green")
	require.Equal(t, "up #c2410c", colour[ids["edge-a"]+">"+ids["relay-c"]], "slow up link is orange")
	require.Equal(t, "down #b3261e", colour[ids["relay-c"]+">"+ids["edge-b"]], "down link is red")
	require.Contains(t, svg[1], "relay-c (relay)")
	// The cluster's strip counts the nodes reporting per bucket.
	cs := regexp.MustCompile(`(?s)<div id="cluster-strip-demo">(.*?)</div>`).FindStringSubmatch(page)
	require.NotNil(t, cs)
	ccells := regexp.MustCompile(`<rect class="cell" data-state="(\w+)" data-count="(\d+)"`).FindAllStringSubmatch(cs[1], -1)
	require.Len(t, ccells, 30)
	require.Equal(t, []string{"normal", "2"}, ccells[29][1:], "edge-a and edge-b reported in the current bucket")
	cstates := map[string]int{}
	for _, cell := range ccells {
		cstates[cell[1]]++
	}
	require.Equal(t, map[string]int{"normal": 2, "degraded": 1, "missing": 27}, cstates)

	// Health strip on the node page and the health page.
	for _, u := range []string{"/console/nodes/" + ids["edge-a"], "/console/health?cluster=demo"} {
		page = getPage(t, c, srv.URL+u)
		strips := regexp.MustCompile(`(?s)<svg class="strip".*?</svg>`).FindAllString(page, -1)
		var strip string
		for _, s := range strips {
			if strings.Contains(s, "edge-a in demo") {
				strip = s
			}
		}
		require.NotEmpty(t, strip, "%s shows edge-a's strip", u)
		if strings.HasPrefix(u, "/console/nodes/") {
			require.Contains(t, page, `<span title="`+ids["edge-b"]+`">edge-b</span>`, "mesh peers by name, id on hover")
			require.Contains(t, page, `data-what="Disable edge-a in demo"`, "disable names the action")
			require.Regexp(t, `(?s)<table id="node-mesh-links">.*>edge-b</span></td><td>up</td><td>core</td><td>2.5 ms</td><td>0%</td>`, page, "humane RTT and loss")
			require.Contains(t, page, `<td>180 ms</td>`)
		}
		cells := regexp.MustCompile(`<rect class="cell" data-state="(\w+)" data-count="(\d+)"`).FindAllStringSubmatch(strip, -1)
		require.Len(t, cells, 30, "one cell per 2-minute bucket of the last hour")
		count := map[string]int{}
		beats := 0
		for _, cell := range cells {
			count[cell[1]]++
			n := 0
			for _, ch := range cell[2] {
				n = n*10 + int(ch-'0')
			}
			beats += n
		}
		require.Equal(t, map[string]int{"normal": 2, "degraded": 1, "missing": 27}, count, u)
		require.Equal(t, 4, beats, u)
		require.Equal(t, "normal", cells[len(cells)-1][1], "the current bucket is the last cell")
	}

	// Snapshot roll-out on the clusters page matches the API's status.
	sst, err := a.SnapshotStatus(ctx, cl.ID, "", false, store.Page{Limit: 100})
	require.NoError(t, err)
	require.Len(t, sst, 3)
	lag := 0
	for _, x := range sst {
		if x.Lagging {
			lag++
		}
	}
	page = getPage(t, c, srv.URL+"/console/clusters?cluster=demo")
	require.Contains(t, page, fmt.Sprintf(`data-applied="%d" data-lagging="%d"`, 3-lag, lag))
	require.Contains(t, page, `data-what="Rebuild the snapshots of demo"`)

	// Certificate expiry timeline: a mark per active node certificate.
	page = getPage(t, c, srv.URL+"/console/trust?cluster=demo")
	ex := regexp.MustCompile(`(?s)<figure id="expiry-demo">(.*?)</figure>`).FindStringSubmatch(page)
	require.NotNil(t, ex)
	require.Len(t, regexp.MustCompile(`<g class="cert" data-state="ok">`).FindAllString(ex[1], -1), 3, "a mark per fresh certificate, judged ok: %s", ex[1])

	// The audit page pages newest first, 100 at a time, with filters kept.
	for i := 0; i < 230; i++ {
		outcome := "ok"
		if i%2 == 1 {
			outcome = "denied"
		}
		require.NoError(t, a.AuditRisk(ctx, authority.Op{Action: "test.paging", Actor: authority.Actor{ID: "tester", Kind: "user", SourceAddr: "127.0.0.1"},
			Details: map[string]any{"n": i}}, outcome, nil))
	}
	auditRows := regexp.MustCompile(`(?s)<td>user:tester</td>.*?&#34;n&#34;:(\d+)`)
	older := regexp.MustCompile(`<a href="([^"]+)" id="audit-older"`)
	var seen []string
	next := "?action=test.paging&outcome=denied"
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, 3, "115 denied events fit two pages")
		page = getPage(t, c, srv.URL+"/console/audit"+strings.ReplaceAll(next, "&amp;", "&"))
		for _, m := range auditRows.FindAllStringSubmatch(page, -1) {
			seen = append(seen, m[1])
		}
		next = ""
		if m := older.FindStringSubmatch(page); m != nil {
			next = m[1]
			require.Contains(t, next, "outcome=denied", "the filter is kept")
		}
	}
	require.Len(t, seen, 115, "every denied event once")
	require.Equal(t, "229", seen[0], "newest first")
	require.Equal(t, "1", seen[len(seen)-1])

	// The services page of the cluster renders with node names.
	page = getPage(t, c, srv.URL+"/console/services?cluster=demo")
	require.Contains(t, page, `<table id="service-types">`)

	// The Raft panel of the single-authority group.
	page = getPage(t, c, srv.URL+"/console/raft")
	require.Contains(t, page, `<b id="raft-leader">`+d.Status().NodeID+`</b>`)
	require.Contains(t, page, `<b id="raft-quorum">yes</b>`)
	require.Contains(t, page, `quorum (1 voters, majority 1)`)
	require.Regexp(t, `<b id="raft-epoch">[1-9][0-9]*</b>`, page)
	require.Regexp(t, `(?s)<table id="raft-members">.*<td>`+d.Status().NodeID+`</td><td>leader</td><td>voter</td>`, page)
	// Epoch history: the current epoch, claimed by this authority.
	require.Regexp(t, `(?s)<table id="raft-epochs">.*<tr class="epoch epoch-current" data-epoch="[1-9][0-9]*"><td>[1-9][0-9]*</td><td>`+d.Status().NodeID+`</td>.*<td>current</td><td>[0-9hms ]+ so far</td>`, page)

	// Overview totals are SQL counts, not page lengths: 600 more members
	// (seeded as the superuser, fence trigger off) are all counted.
	conn, err := pgx.Connect(ctx, g.DBURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	for _, q := range []string{`ALTER TABLE nodes DISABLE TRIGGER USER`, `ALTER TABLE cluster_memberships DISABLE TRIGGER USER`,
		`INSERT INTO nodes (id, name, host_fingerprint) SELECT gen_random_uuid(), 'bulk-' || i, encode(sha256(i::text::bytea), 'hex') FROM generate_series(1, 600) i`,
		`INSERT INTO cluster_memberships (cluster_id, node_id) SELECT '` + cl.ID + `', id FROM nodes WHERE name LIKE 'bulk-%'`,
		`ALTER TABLE nodes ENABLE TRIGGER USER`, `ALTER TABLE cluster_memberships ENABLE TRIGGER USER`} {
		_, err := tx.Exec(ctx, q)
		require.NoError(t, err, q)
	}
	require.NoError(t, tx.Commit(ctx))
	page = getPage(t, c, srv.URL+"/console/?cluster=demo")
	require.Contains(t, page, `<b id="ov-nodes">603</b>`)
	require.Contains(t, page, `<b id="ov-pending">0</b>`)
}
