package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agent/adminingress"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/pki"
)

// runAdmin starts `rap-node-agent run` without a mesh, with the given
// capabilities and a Cluster Admin Endpoint on admin (a.extra: more run
// flags, e.g. --admin-cert/--admin-key).
func (a *meshAgent) runAdmin(capabilities, admin string) {
	a.cmd = exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("run", append([]string{"--interval", "300ms", "--desired-every", "600ms",
		"--request-timeout", "1s", "--log-level", "debug", "--snapshot-wait", "2s", "--no-mesh", "--storage-listen", "127.0.0.1:0",
		"--capability", capabilities, "--admin-listen", admin, "--admin-check-every", "300ms"}, a.extra...)...)...)
	a.out = &syncBuf{}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	require.NoError(a.t, a.cmd.Start())
	cmd, out, t := a.cmd, a.out, a.t
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- agent %s output:\n%s", a.name, out.String())
		}
	})
}

// adminStatus is the admin endpoint part of the agent's status (nil while
// the agent starts).
func (a *meshAgent) adminStatus() *adminingress.Status {
	out, err := exec.Command(filepath.Join(a.bin, "rap-node-agent"), a.args("status", "-o", "json")...).Output()
	if err != nil {
		return nil
	}
	var r struct {
		AdminEndpoint *adminingress.Status `json:"admin_endpoint"`
	}
	if json.Unmarshal(out, &r) != nil {
		return nil
	}
	return r.AdminEndpoint
}

func hasUnmet(s *adminingress.Status, code string) bool {
	if s == nil || s.Serving {
		return false
	}
	for _, u := range s.Unmet {
		if u.Code == code {
			return true
		}
	}
	return false
}

// adminHTTP is a browser-side client of an admin endpoint: it trusts the
// cluster CA (the endpoint presents the node identity certificate) and
// follows no redirects.
func adminHTTP(t *testing.T, pin string) *http.Client {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true, //nolint:gosec // the chain is checked below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) < 2 {
				return errors.New("the endpoint did not present the cluster CA")
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			ca, err := x509.ParseCertificate(raw[1])
			if err != nil {
				return err
			}
			if err := pki.CheckPin(ca, pin); err != nil {
				return err
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca)
			_, err = c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
			return err
		}}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// adminRig is an authority group with one cluster whose agents run Cluster
// Admin Endpoints (TestClusterAdminEndpoint, TestAdminEndpointInBrowser,
// TestAdminEndpointFollowsLeader).
type adminRig struct {
	t          *testing.T
	g          *authtest.Group
	owner      *apiclient.Client
	bin, slug  string
	token, pin string
	clusterID  string
}

// newAdminRig creates cluster slug on g with a join token for agents
// enrollments, using the group's owner API token.
func newAdminRig(t *testing.T, g *authtest.Group, slug string, agents int) *adminRig {
	owner := g.Client(g.DS...)
	ci, token := mkClusterTokenN(t, owner, slug, agents)
	return &adminRig{t: t, g: g, owner: owner, bin: binaries(t), slug: slug, token: token, pin: ci.pin, clusterID: ci.id}
}

// enroll enrolls agent name against the authorities at addrs, in that
// order (the order the agent, and its endpoint, try them in).
func (r *adminRig) enroll(name string, addrs []string) *meshAgent {
	ag := &meshAgent{agentProc: &agentProc{t: r.t, bin: r.bin, state: filepath.Join(r.t.TempDir(), "state.db")}, name: name}
	ag.node = enrollAs(r.t, ag, r.g, r.owner, addrs, r.slug, r.token, r.pin)
	return ag
}

// assign assigns role to node with the owner API token and returns the
// assignment id.
func (r *adminRig) assign(node, role string) string {
	var rv struct {
		ID string `json:"id"`
	}
	r.g.Eventually(20*time.Second, role+" assigned to "+node, func() bool {
		return r.owner.Do(context.Background(), http.MethodPost, "/v1/clusters/"+r.slug+"/nodes/"+node+"/roles", map[string]any{"role": role}, &rv, nil) == nil
	})
	return rv.ID
}

// waitServing waits until a's endpoint says it serves.
func (r *adminRig) waitServing(a *meshAgent) {
	r.t.Helper()
	r.g.Eventually(45*time.Second, a.name+"'s admin endpoint serving", func() bool {
		st := a.adminStatus()
		return st != nil && st.Serving
	})
}

// TestClusterAdminEndpoint (spec: Admin Endpoint Placement; issue 18 item
// 5) runs one authority (snapshots live 30 s) with PostgreSQL and two real
// agent processes with --admin-listen. a gets admin-ingress: its endpoint
// stays down (role_coverage) until some member covers core-mesh, then
// serves the manifest's pages, read with the admin's bearer credential; a
// group created through its form is audited with the admin's identity, the
// same actor as a direct owner call, never the node. Disabling the role,
// letting the snapshot expire and letting the heartbeat lapse (the
// authority stops) each take it down with that reason, on the 503 page and
// in `rap-node-agent status`. s, a config-storage node that was also given
// admin-ingress, never serves.
func TestClusterAdminEndpoint(t *testing.T) {
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) { c.Snapshots.TTL = 30 * time.Second })
	ctx := context.Background()
	g.Leader(15 * time.Second)
	rig := newAdminRig(t, g, "adm", 2)
	owner := rig.owner
	addrs := apiAddrs(g)
	a, s := rig.enroll("adm-a", addrs), rig.enroll("adm-s", addrs)
	aAddr, sAddr := freePort(t), freePort(t)
	a.runAdmin("can_accept_client_ingress,can_route_mesh", aAddr)
	s.runAdmin("can_accept_client_ingress,can_run_config_storage", sAddr)

	hc := adminHTTP(t, rig.pin)
	get := func(addr, path string, hdr map[string]string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "https://"+addr+path, nil)
		require.NoError(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	bearer := map[string]string{"Authorization": "Bearer " + g.Token}
	assign := rig.assign
	waitDown := func(ag *meshAgent, addr, code string) {
		t.Helper()
		g.Eventually(45*time.Second, ag.name+" admin endpoint down with "+code, func() bool { return hasUnmet(ag.adminStatus(), code) })
		st, body := get(addr, "/", bearer)
		require.Equal(t, http.StatusServiceUnavailable, st, body)
		require.Contains(t, body, code, "the 503 page names the reason")
		require.Contains(t, s.statusTable()+a.statusTable(), "reason: "+code)
	}
	waitUp := func() { t.Helper(); rig.waitServing(a) }

	// 1. No role: down, role_not_assigned. The role alone: role_coverage
	// (the pages need core-mesh covered). Covered: serving.
	waitDown(a, aAddr, adminingress.ReasonRoleNotAssigned)
	ingress := assign(a.node, "admin-ingress")
	waitDown(a, aAddr, adminingress.ReasonRoleCoverage)
	assign(a.node, "core-mesh")
	waitUp()
	require.Contains(t, a.statusTable(), "admin endpoint: serving")

	// 2. Storage-only node: s holds config-storage and (also) admin-ingress;
	// the authorities refuse it, and it never serves.
	assign(s.node, "config-storage")
	assign(s.node, "admin-ingress")
	waitDown(s, sAddr, adminingress.ReasonStorageNode)

	// 3. Pages, read with the admin's credential; without one the
	// authorities refuse (the endpoint has none of its own).
	st, body := get(aAddr, "/", bearer)
	require.Equal(t, http.StatusOK, st, body)
	require.Contains(t, body, `href="/ui/groups"`)
	st, body = get(aAddr, "/ui/roles", bearer)
	require.Equal(t, http.StatusOK, st, body)
	require.Contains(t, body, "admin-ingress")
	require.Contains(t, body, a.node)
	st, body = get(aAddr, "/ui/roles", nil)
	require.Equal(t, http.StatusUnauthorized, st, body)
	st, body = get(aAddr, "/v1/clusters/adm/roles", bearer)
	require.Equal(t, http.StatusOK, st, body)
	require.Contains(t, body, `"items"`)
	st, _ = get(aAddr, "/v1/agent/whoami", bearer)
	require.Equal(t, http.StatusForbidden, st, "agent routes are not forwarded")

	// 4. A mutation through the endpoint's form is audited with the admin's
	// identity: the same actor as a direct owner call, not the node.
	form := url.Values{"name": {"via-admin-endpoint"}}
	req, err := http.NewRequest(http.MethodPost, "https://"+aAddr+"/ui/groups/forms/1", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+g.Token)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode, string(b))
	st, body = get(aAddr, "/ui/groups", bearer)
	require.Equal(t, http.StatusOK, st)
	require.Contains(t, body, "via-admin-endpoint")
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/adm/groups", map[string]any{"name": "direct"}, nil, nil))
	var audit struct {
		Items []struct {
			Actor     string          `json:"actor"`
			ActorKind string          `json:"actor_kind"`
			Details   json.RawMessage `json:"details"`
		} `json:"items"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/audit?action=group.create&limit=10", nil, &audit, nil))
	require.Len(t, audit.Items, 2)
	var viaActor string
	actors := map[string]bool{}
	for _, ev := range audit.Items {
		actors[ev.Actor] = true
		require.NotEqual(t, "node", ev.ActorKind)
		require.NotEqual(t, a.node, ev.Actor)
		if strings.Contains(string(ev.Details), "via-admin-endpoint") {
			viaActor = ev.Actor
		}
	}
	require.NotEmpty(t, viaActor, "the endpoint's mutation is audited")
	require.Len(t, actors, 1, "audited as the same admin as the direct call")

	// 5. Remove the role (disable): down with role_not_assigned; back.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/adm/roles/"+ingress+"/disable", nil, nil, nil))
	waitDown(a, aAddr, adminingress.ReasonRoleNotAssigned)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/adm/roles/"+ingress+"/enable", nil, nil, nil))
	waitUp()

	// 6. The snapshot expires (30 s, nothing re-signs it): down with
	// snapshot_expired; a forced rebuild brings it back.
	waitDown(a, aAddr, adminingress.ReasonSnapshotExpired)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/adm/snapshots/rebuild", map[string]any{"force": true}, nil, nil))
	waitUp()

	// 7. The heartbeat lapses (the authority stops): down with
	// heartbeat_stale.
	require.NoError(t, g.DS[0].Close())
	g.DS[0] = nil
	waitDown(a, aAddr, adminingress.ReasonHeartbeatStale)
}
