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
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/store"
)

type consoleClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *consoleClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// code moves the admin clock one TOTP step on and returns that step's code, so
// every code the browser types is fresh (login, then each step-up).
func (c *consoleClock) code(t *testing.T, secret string) string {
	c.mu.Lock()
	c.t = c.t.Add(30 * time.Second)
	now := c.t
	c.mu.Unlock()
	s, err := authn.GenerateTOTPCode(secret, now, 30)
	require.NoError(t, err)
	return s
}

func chromiumPath(t *testing.T) string {
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	t.Fatal("chromium is not installed: run scripts/install-chromium.sh (as root: apt-get install -y chromium)")
	return ""
}

// TestConsoleInBrowser is the tier-5 browser test: headless Debian chromium
// logs in with password + TOTP, approves a join request with step-up, assigns
// a role with step-up and finds the approval in the audit page. Screenshots go
// to out/screenshots/.
func TestConsoleInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	clock := &consoleClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.Now}
	})
	d := g.Leader(15 * time.Second)
	ad := d.Auth.Admin()
	ctx := context.Background()
	_, _, err := ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	const password = "console test password"
	secret, err := ad.DemoEnroll(ctx, "owner", password)
	require.NoError(t, err)

	// Data for the pages: a cluster, a join token and a pending join request.
	sys := authority.Actor{ID: "test", Kind: "system"}
	cl, err := d.Auth.CreateCluster(ctx, sys, authority.CreateClusterRequest{Name: "East", Slug: "east"}, "")
	require.NoError(t, err)
	tok, err := d.Auth.CreateJoinToken(ctx, sys, authority.CreateTokenRequest{Cluster: "east", MaxUses: 2}, "")
	require.NoError(t, err)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte("edge-browser"))
	st, err := d.Auth.SubmitJoinRequest(ctx, "127.0.0.1", cl.ID, authority.JoinRequestInput{
		Token: tok.Token, NodeName: "edge-browser", HostFingerprint: hex.EncodeToString(h[:]), PublicKey: priv.Public().(ed25519.PublicKey),
		NoisePublicKey: nk.PublicKey().Bytes(), Facts: json.RawMessage(`{"os":"linux"}`),
		Capabilities: []domain.Capability{"can_route_mesh", "can_accept_node_ingress"}, RequestedRoles: []domain.Role{domain.RoleRelayNode}, PollSecret: poll})
	require.NoError(t, err)
	reqID := st.RequestID

	shots := filepath.Join("..", "out", "screenshots")
	require.NoError(t, os.MkdirAll(shots, 0o755))
	opts := append([]chromedp.ExecAllocatorOption{}, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Headless,
		chromedp.ExecPath(exe), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The authority's own listener serves Ed25519 certificates (chained to the
	// Ed25519 platform CA), which browsers do not accept; the console handler is
	// served here over TLS with an RSA test certificate instead.
	srv := httptest.NewUnstartedServer(d.API.Handler())
	srv.StartTLS()
	defer srv.Close()
	base := srv.URL
	// The first action starts the browser; it must not run under a timeout.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate("about:blank")))
	tctx, cancelT := context.WithTimeout(bctx, 90*time.Second)
	defer cancelT()
	css := func(s string) chromedp.CSS { return chromedp.CSS(s) }
	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.FullScreenshot(100)(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	waitText := func(sel, want string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			deadline := time.Now().Add(20 * time.Second)
			var got string
			for time.Now().Before(deadline) {
				if s, err := chromedp.Text(css(sel))(ctx, tg); err == nil {
					got = s
					if strings.Contains(got, want) {
						return nil
					}
				}
				if _, err := chromedp.Sleep(150*time.Millisecond)(ctx, tg); err != nil {
					return err
				}
			}
			flash, _ := chromedp.Text(css("#flash"))(ctx, tg)
			return fmt.Errorf("%s never contained %q (last %q; flash %q)", sel, want, got, flash)
		})
	}
	stepUp := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Steps(chromedp.WaitVisible(css("#stepup-code")), shot(name),
				chromedp.SendKeys(css("#stepup-code"), clock.code(t, secret)), chromedp.Click(css("#stepup-submit")))(ctx, tg)
			return err
		})
	}

	// Log in with password + TOTP.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible(css("#login-form")),
		chromedp.SendKeys(css("#login-user"), "owner"),
		chromedp.SendKeys(css("#login-password"), password),
		chromedp.SendKeys(css("#login-totp"), clock.code(t, secret)),
		shot("01-login"),
		chromedp.Click(css("#login-submit")),
		chromedp.WaitVisible(css("#ov-nodes")),
		waitText("#ov-pending", "1"),
		shot("02-overview"),
	)
	require.NoError(t, err)

	// Approve the join request with step-up.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/join-requests?status=pending"),
		chromedp.WaitVisible(css("#approve-"+reqID)),
		shot("03-join-requests"),
		chromedp.Click(css("#approve-"+reqID)),
		stepUp("04-stepup-approve"),
		waitText("#flash", "Done"),
	)
	require.NoError(t, err)
	jr, err := d.Auth.GetJoinRequest(ctx, reqID)
	require.NoError(t, err)
	require.Equal(t, "approved", jr.Status)
	require.NotNil(t, jr.ApprovedNodeID)
	nodeID := *jr.ApprovedNodeID

	// Assign a role on the node page with step-up.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/nodes/"+nodeID),
		chromedp.WaitVisible(css("#assign-role")),
		chromedp.SetValue(css("#assign-role"), "relay-node"),
		chromedp.Click(css("#assign-role-submit")),
		stepUp("05-stepup-role"),
		waitText("#flash", "Done"),
		chromedp.Navigate(base+"/console/nodes/"+nodeID),
		waitText("#node-roles", "relay-node"),
		shot("06-node-detail"),
	)
	require.NoError(t, err)

	// Accessibility: the skip link, the current page in the navigation and
	// the labelled step-up dialog are in the accessibility tree.
	ax := func(role, name string) chromedp.Action[int] {
		return func(ctx context.Context, tg *chromedp.Target) (int, error) {
			ns, err := chromedp.Nodes(css("body"))(ctx, tg)
			if err != nil || len(ns) == 0 {
				return 0, fmt.Errorf("no body: %v", err)
			}
			res, err := cdp.Call(ctx, tg, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{BackendNodeID: ns[0].BackendNodeID, Role: role, AccessibleName: name})
			if err != nil {
				return 0, err
			}
			n := 0
			for _, x := range res.Nodes {
				if !x.Ignored {
					n++
				}
			}
			return n, nil
		}
	}
	axCount := func(role, name string) int {
		n, err := chromedp.Run(tctx, ax(role, name))
		require.NoError(t, err)
		return n
	}
	eval := func(js string) string {
		v, err := chromedp.Run(tctx, chromedp.Evaluate[string](js))
		require.NoError(t, err)
		return v
	}
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(base+"/console/join-requests?cluster=east"), chromedp.WaitVisible(css("#token-create"))))
	require.Equal(t, 1, axCount("link", "Skip to content"), "skip link")
	require.Equal(t, "Join requests", eval(`document.querySelector('nav a[aria-current="page"]').textContent`))
	require.Equal(t, "col", eval(`document.querySelector("#tokens th").getAttribute("scope")`))
	require.Equal(t, 0, axCount("dialog", "Confirm with your second factor"), "the dialog is closed")

	// Create a join token in the console: the step-up dialog names the
	// action; Escape closes it and gives focus back to the button.
	err = chromedp.Do(tctx,
		chromedp.SetValue(css("#token-uses"), "1"),
		chromedp.SendKeys(css("#token-desc"), "from the console"),
		chromedp.Click(css("#token-create-submit")),
		chromedp.WaitVisible(css("#stepup-code")),
		waitText("#stepup-what", "Create a join token for east"),
	)
	require.NoError(t, err)
	require.Equal(t, 1, axCount("dialog", "Confirm with your second factor"), "the open dialog is a labelled dialog")
	require.Equal(t, 1, axCount("textbox", "Authenticator code"), "the code input is labelled")
	require.Equal(t, "stepup-code", eval(`document.activeElement.id`))
	err = chromedp.Do(tctx, chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(css("#stepup-code")))
	require.NoError(t, err)
	require.Equal(t, "token-create-submit", eval(`document.activeElement.id`), "focus returns to the opener")
	err = chromedp.Do(tctx,
		chromedp.Click(css("#token-create-submit")),
		stepUp("09-stepup-token"),
		waitText("#flash", "Done"),
		waitText("#enroll-line", "rap-node-agent enroll --authority "),
		shot("10-token-created"),
	)
	require.NoError(t, err)
	line := eval(`document.getElementById("enroll-line").textContent`)
	fields := strings.Fields(line)
	consoleToken := ""
	for i, f := range fields {
		if f == "--token" && i+1 < len(fields) {
			consoleToken = fields[i+1]
		}
	}
	require.NotEmpty(t, consoleToken, line)
	require.Contains(t, line, "--ca-pin "+cl.CAPin)

	// Enroll an agent with it and approve it in the console: the dialog says
	// what is approved, in words.
	_, priv2, _ := ed25519.GenerateKey(rand.Reader)
	nk2, _ := ecdh.X25519().GenerateKey(rand.Reader)
	h2 := sha256.Sum256([]byte("edge-console"))
	st2, err := d.Auth.SubmitJoinRequest(ctx, "127.0.0.1", cl.ID, authority.JoinRequestInput{
		Token: consoleToken, NodeName: "edge-console", HostFingerprint: hex.EncodeToString(h2[:]), PublicKey: priv2.Public().(ed25519.PublicKey),
		NoisePublicKey: nk2.PublicKey().Bytes(), Facts: json.RawMessage(`{"os":"linux"}`),
		Capabilities: []domain.Capability{"can_route_mesh"}, PollSecret: poll})
	require.NoError(t, err)
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/join-requests?status=pending"),
		chromedp.WaitVisible(css("#approve-"+st2.RequestID)),
		chromedp.Click(css("#approve-"+st2.RequestID)),
		waitText("#stepup-what", "Approve edge-console into east"),
		stepUp("11-stepup-approve-console-token"),
		waitText("#flash", "Done: Approve edge-console into east"),
	)
	require.NoError(t, err)
	jr2, err := d.Auth.GetJoinRequest(ctx, st2.RequestID)
	require.NoError(t, err)
	require.Equal(t, "approved", jr2.Status)

	// The topology picture of east in the browser: a node per agent, a line
	// per reported link, the relay marked.
	for _, rep := range []struct{ from, to string }{{nodeID, *jr2.ApprovedNodeID}, {*jr2.ApprovedNodeID, nodeID}} {
		_, err := d.Auth.ReportLinks(ctx, authority.NodePrincipal{ClusterID: cl.ID, NodeID: rep.from},
			authority.LinkReportInput{Links: []agentapi.LinkStatus{{PeerNodeID: rep.to, State: "up", RTTMs: 4, Set: "core"}}})
		require.NoError(t, err)
	}
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(base+"/console/topology?cluster=east"), chromedp.WaitVisible(css("#topology-east svg")), shot("12-topology")))
	require.Equal(t, "2 2 1", eval(`[document.querySelectorAll('#topology-east g.node[data-kind="agent"]').length, document.querySelectorAll('#topology-east line.link').length, document.querySelectorAll('#topology-east g.node[data-relay="true"]').length].join(" ")`))
	require.Equal(t, 1, axCount("image", "Mesh topology of east: 2 nodes, 2 reported links")+axCount("img", "Mesh topology of east: 2 nodes, 2 reported links"), "the picture is an image named by its title")

	// Disable and re-enable the new node's membership on its page (the
	// confirmation prompt is accepted).
	newNode := *jr2.ApprovedNodeID
	membership := func() string {
		n, err := d.Auth.GetNode(ctx, newNode)
		require.NoError(t, err)
		require.Len(t, n.Memberships, 1)
		return n.Memberships[0].Status
	}
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/nodes/"+newNode),
		chromedp.WaitVisible(css("#disable-"+cl.ID)),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`window.confirm = () => true; true`)(ctx, tg)
			return err
		}),
		chromedp.Click(css("#disable-"+cl.ID)),
		waitText("#flash", "Done: Disable edge-console in east"),
	)
	require.NoError(t, err)
	require.Equal(t, "disabled", membership())
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/nodes/"+newNode),
		chromedp.WaitVisible(css("#enable-"+cl.ID)),
		chromedp.Click(css("#enable-"+cl.ID)),
		waitText("#flash", "Done: Enable edge-console in east"),
	)
	require.NoError(t, err)
	require.Equal(t, "active", membership())

	// A partition action from the clusters page, with step-up in words.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/clusters?cluster=east"),
		chromedp.WaitVisible(css("#partition-east")),
		chromedp.SetValue(css("#partition-action-east"), "split"),
		chromedp.SendKeys(css("#partition-reason-east"), "site link cut"),
		chromedp.Click(css("#partition-east button")),
		waitText("#stepup-what", "Partition action “split (stop admissions)” on east"),
		stepUp("13-stepup-partition"),
		waitText("#flash", "Done"),
	)
	require.NoError(t, err)
	pi, ok := d.Auth.FSM().Partition(cl.ID)
	require.True(t, ok)
	require.Equal(t, domain.PartitionDegraded, pi.State)
	require.Equal(t, "site link cut", pi.Reason)

	// The other pictures render in the browser: the node's health strip (one
	// cell per bucket), the Raft panel, the expiry timeline, the roll-out bar.
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(base+"/console/nodes/"+newNode), chromedp.WaitVisible(css("svg.strip")), shot("14-node-strip")))
	require.Equal(t, "30", eval(`String(document.querySelectorAll("svg.strip rect.cell").length)`))
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(base+"/console/raft"), chromedp.WaitVisible(css("#raft-members")), shot("15-raft")))
	require.Equal(t, "yes", eval(`document.getElementById("raft-quorum").textContent`))
	// The Raft panel's epoch history names this authority as the leader of
	// the current epoch.
	require.Contains(t, eval(`document.querySelector("#raft-epochs tr.epoch-current").textContent`), d.Status().NodeID)
	// Create an authority join token from the Raft panel: the step-up dialog
	// names the action in words, the token is shown once and is the one the
	// authority keeps (active, with the description typed).
	err = chromedp.Do(tctx,
		chromedp.SetValue(css("#authority-token-ttl"), "10"),
		chromedp.SendKeys(css("#authority-token-desc"), "standby auth-4"),
		chromedp.Click(css("#authority-token-submit")),
		waitText("#stepup-what", "Create an authority join token (standby auth-4) valid for 10 minutes"),
		stepUp("15a-stepup-authority-token"),
		waitText("#flash", "Done. Copy the value shown below now"),
		waitText("#shown", "token:"),
		shot("15b-authority-token"),
	)
	require.NoError(t, err)
	shown := strings.TrimSpace(strings.TrimPrefix(eval(`document.getElementById("shown").textContent`), "token:"))
	require.NotEmpty(t, shown)
	ajts, err := d.Auth.ListAuthorityJoinTokens(ctx, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, ajts, 1)
	require.Equal(t, "standby auth-4", ajts[0].Description)
	require.Equal(t, "active", ajts[0].State)
	require.WithinDuration(t, time.Now().Add(10*time.Minute), ajts[0].ExpiresAt, 2*time.Minute)
	_, _, err = d.Auth.CheckAuthorityJoinToken(ctx, shown, "127.0.0.1")
	require.NoError(t, err, "the shown token is the authority's join token")
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(base+"/console/trust?cluster=east"), chromedp.WaitVisible(css("#expiry-east svg")), shot("16-trust-expiry")))
	require.Equal(t, "2", eval(`String(document.querySelectorAll("#expiry-east g.cert").length)`))
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(base+"/console/clusters?cluster=east"), chromedp.WaitVisible(css("#rollout-east svg")), shot("17-clusters")))

	// Create a cluster from the console, then disable it (confirmation
	// accepted); the dialog names the cluster.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/clusters"),
		chromedp.Click(css("#cluster-create summary")),
		chromedp.WaitVisible(css("#cluster-name")),
		chromedp.SendKeys(css("#cluster-name"), "West"),
		chromedp.SendKeys(css("#cluster-slug"), "west"),
		chromedp.Click(css("#cluster-create-submit")),
		waitText("#stepup-what", "Create cluster west"),
		stepUp("18-stepup-cluster-create"),
		waitText("#flash", "Done: Create cluster west"),
	)
	require.NoError(t, err)
	west, err := d.Auth.GetCluster(ctx, "west")
	require.NoError(t, err)
	require.Equal(t, "West", west.Name)
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/clusters?cluster=west"),
		chromedp.WaitVisible(css("#cluster-disable-west")),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`window.confirm = () => true; true`)(ctx, tg)
			return err
		}),
		chromedp.Click(css("#cluster-disable-west")),
		waitText("#flash", "Done: Disable cluster west"),
	)
	require.NoError(t, err)
	west, err = d.Auth.GetCluster(ctx, "west")
	require.NoError(t, err)
	require.Equal(t, "disabled", west.Status)

	// Disable another platform account from the account page, step-up in
	// words.
	ops, _, err := ad.CreateUser(ctx, sys, "ops", "platform_owner")
	require.NoError(t, err)
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/account"),
		chromedp.WaitVisible(css("#account-disable-ops")),
		chromedp.Click(css("#account-disable-ops")),
		waitText("#stepup-what", "Disable the account ops"),
		stepUp("19-stepup-account-disable"),
		waitText("#flash", "Done: Disable the account ops"),
	)
	require.NoError(t, err)
	us, err := ad.Users(ctx, store.Page{Limit: 10})
	require.NoError(t, err)
	disabled := false
	for _, u := range us {
		if u.ID == ops.ID {
			disabled = u.Disabled
		}
	}
	require.True(t, disabled, "ops is disabled")

	// Groups: create one, place the new node in it, delete an empty one.
	acceptConfirm := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](`window.confirm = () => true; true`)(ctx, tg)
		return err
	})
	oldRack, err := d.Auth.CreateGroup(ctx, sys, "east", authority.CreateGroupRequest{Name: "old-rack"}, "")
	require.NoError(t, err)
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/groups?cluster=east"),
		chromedp.WaitVisible(css("#group-name")),
		chromedp.SendKeys(css("#group-name"), "site-a"),
		chromedp.Click(css("#group-create-submit")),
		waitText("#flash", "Done: Create group site-a in east"),
	)
	require.NoError(t, err)
	groupID := func(name string) string {
		gs, err := d.Auth.ListGroups(ctx, "east")
		require.NoError(t, err)
		for _, g := range gs {
			if g.Name == name {
				return g.ID
			}
		}
		return ""
	}
	siteA := groupID("site-a")
	require.NotEmpty(t, siteA, "the console created the group")
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/groups?cluster=east"),
		chromedp.WaitVisible(css("#group-place-node")),
		chromedp.SetValue(css("#group-place-node"), newNode),
		chromedp.SetValue(css("#group-place-group"), siteA),
		chromedp.Click(css("#group-place-submit")),
		waitText("#flash", "Done: Place edge-console in group site-a"),
		chromedp.Navigate(base+"/console/groups?cluster=east"),
		waitText("#groups", "edge-console"),
		shot("20-groups"),
		acceptConfirm,
		chromedp.Click(css("#group-delete-old-rack")),
		waitText("#flash", "Done: Delete group old-rack in east"),
	)
	require.NoError(t, err)
	n2, err := d.Auth.GetNode(ctx, newNode)
	require.NoError(t, err)
	require.NotNil(t, n2.Memberships[0].GroupID)
	require.Equal(t, siteA, *n2.Memberships[0].GroupID)
	require.Empty(t, groupID(oldRack.Name), "the console deleted the empty group")

	// Route intents and QoS policies: create each in the console, then delete.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/policies?cluster=east"),
		chromedp.WaitVisible(css("#intent-name")),
		chromedp.SendKeys(css("#intent-name"), "site-a-relay"),
		chromedp.SetValue(css("#intent-source"), "group:site-a"),
		chromedp.SetValue(css("#intent-action"), "prefer-relay"),
		chromedp.Click(css("#intent-create-submit")),
		waitText("#flash", "Done: Create route intent site-a-relay (prefer-relay group:site-a → *) in east"),
		chromedp.Navigate(base+"/console/policies?cluster=east"),
		chromedp.WaitVisible(css("#qos-name")),
		chromedp.SendKeys(css("#qos-name"), "voice"),
		chromedp.SetValue(css("#qos-class"), "interactive"),
		chromedp.SendKeys(css("#qos-latency"), "20"),
		chromedp.Click(css("#qos-create-submit")),
		waitText("#flash", "Done: Create QoS policy voice (interactive) in east"),
		chromedp.Navigate(base+"/console/policies?cluster=east"),
		waitText("#intents", "site-a-relay"),
		waitText("#qos", "20 ms"),
		shot("21-policies"),
	)
	require.NoError(t, err)
	ris, err := d.Auth.ListRouteIntents(ctx, "east", store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, ris, 1)
	require.Equal(t, "group:site-a", ris[0].Source)
	require.Equal(t, "prefer-relay", ris[0].Action)
	qps, err := d.Auth.ListQoSPolicies(ctx, "east", store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, qps, 1)
	require.Equal(t, 20, qps[0].LatencyTargetMs)
	err = chromedp.Do(tctx,
		acceptConfirm,
		chromedp.Click(css("#intent-delete-site-a-relay")),
		waitText("#flash", "Done: Delete route intent site-a-relay in east"),
		chromedp.Navigate(base+"/console/policies?cluster=east"),
		chromedp.WaitVisible(css("#qos-delete-voice")),
		acceptConfirm,
		chromedp.Click(css("#qos-delete-voice")),
		waitText("#flash", "Done: Delete QoS policy voice in east"),
	)
	require.NoError(t, err)
	ris, err = d.Auth.ListRouteIntents(ctx, "east", store.Page{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, ris)
	qps, err = d.Auth.ListQoSPolicies(ctx, "east", store.Page{Limit: 10})
	require.NoError(t, err)
	require.Empty(t, qps)

	// The approval is in the audit page, attributed to the owner.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/audit?action=join_request.approve&outcome=ok"),
		waitText("#audit", "join_request.approve"),
		shot("07-audit"),
		chromedp.Navigate(base+"/console/roles?cluster=east"),
		waitText("#roles", "relay-node"),
		shot("08-roles"),
	)
	require.NoError(t, err)

	// The Releases page: a signed release rolled out to the cluster, with
	// its canary wave's progress bar (no inline styles: the page's CSP).
	publishConsoleRelease(t, d.Auth, sys)
	// Start its rollout from the console: the step-up dialog names it.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/releases?cluster=east"),
		chromedp.WaitVisible(css("#rollout-version-east")),
		chromedp.SendKeys(css("#rollout-version-east"), "1.0.0"),
		chromedp.Click(css("#rollout-start-submit-east")),
		waitText("#stepup-what", "Start the rollout of rap-node-agent 1.0.0 in east"),
		stepUp("09a-stepup-rollout-start"),
		waitText("#flash", "Done: Start the rollout of rap-node-agent 1.0.0 in east"),
	)
	require.NoError(t, err)
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/releases?cluster=east"),
		waitText("#releases", "1.0.0"),
		waitText(".waves", "canary"),
		chromedp.WaitVisible(css(".waves progress")),
		shot("09-releases"),
	)
	require.NoError(t, err)
	// Put the cluster on the candidate channel from the console.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/releases?cluster=east"),
		chromedp.WaitVisible(css("#channel-set-east")),
		chromedp.SetValue(css("#channel-channel-east"), "candidate"),
		chromedp.SendKeys(css("#channel-reason-east"), "early ring"),
		chromedp.Click(css("#channel-set-submit-east")),
		waitText("#stepup-what", "Make east follow the candidate channel of rap-node-agent"),
		stepUp("09b-stepup-channel-set"),
		waitText("#flash", "Done: Make east follow the candidate channel of rap-node-agent"),
		chromedp.Navigate(base+"/console/releases?cluster=east"),
		waitText(".assignments", "candidate"),
	)
	require.NoError(t, err)
	var audited bool
	evs, err := d.Auth.ListAudit(ctx, storeFilter("join_request.approve"), pageAll())
	require.NoError(t, err)
	for _, e := range evs {
		if e.Outcome == "ok" && e.ActorKind == "user" && e.TargetID != "" {
			audited = true
		}
	}
	require.True(t, audited, "the approval is audited as the owner's")
	ros, err := d.Auth.ListAudit(ctx, storeFilter("rollout.start"), pageAll())
	require.NoError(t, err)
	started := false
	for _, e := range ros {
		started = started || (e.Outcome == "ok" && e.ActorKind == "user")
	}
	require.True(t, started, "the console's rollout start is audited as the owner's")
	t.Logf("screenshots in %s", shots)
}

// TestAuditTamperDetectedByVerify is TESTING.md C3: an audit row edited as the
// PostgreSQL superuser with the append-only trigger disabled is named by the
// built `rap-authority audit verify`.
func TestAuditTamperDetectedByVerify(t *testing.T) {
	bin := binaries(t)
	g := authtest.New(t, 1)
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		require.NoError(t, d.Auth.AuditRisk(ctx, authority.Op{Action: "test.event", Actor: authority.Actor{ID: "tester", Kind: "user", SourceAddr: "127.0.0.1"},
			Details: map[string]any{"n": i}}, "ok", map[string]string{"device": "unknown"}))
	}
	// The chainer links events in the background: wait until all five are chained
	// before verifying and picking one to edit.
	conn, err := pgx.Connect(ctx, g.DBURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	require.Eventually(t, func() bool {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = 'test.event' AND seq IS NOT NULL`).Scan(&n)
		return err == nil && n == 5
	}, 30*time.Second, 50*time.Millisecond, "the chainer links the five events")
	verify := func() (string, int) {
		cmd := exec.Command(filepath.Join(bin, "rap-authority"), "audit", "verify", "--no-checkpoint", "--database-url", g.DBURL)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			require.NoError(t, err, string(out))
		}
		return string(out), code
	}
	out, code := verify()
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "intact")

	// Pick a chained row in the middle and edit it behind the application's back.
	var seq int64
	require.NoError(t, conn.QueryRow(ctx, `SELECT seq FROM cluster_audit_events WHERE action = 'test.event' AND seq IS NOT NULL ORDER BY seq LIMIT 1 OFFSET 2`).Scan(&seq))
	_, err = conn.Exec(ctx, `UPDATE cluster_audit_events SET actor = 'mallory' WHERE seq = $1`, seq)
	require.Error(t, err, "the append-only trigger refuses edits")
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `ALTER TABLE cluster_audit_events DISABLE TRIGGER USER`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE cluster_audit_events SET actor = 'mallory' WHERE seq = $1`, seq)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `ALTER TABLE cluster_audit_events ENABLE TRIGGER USER`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	out, code = verify()
	require.Equal(t, 3, code, out)
	require.Contains(t, out, fmt.Sprintf("chain broken at seq %d", seq), out)
	t.Logf("verify after tampering: %s", strings.TrimSpace(out))
}

// publishConsoleRelease registers release roots and a key set and publishes
// rap-node-agent 1.0.0 with a small uploaded artifact, through the service.
func publishConsoleRelease(t *testing.T, a *authority.Authority, actor authority.Actor) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	_, err := a.Releases().SetRoots(ctx, actor, authority.SetRootsRequest{Threshold: 1, Keys: [][]byte{rootKey(1).Public().(ed25519.PublicKey)}, Reason: "console"}, "")
	require.NoError(t, err)
	ks, err := release.NewKeySetEnvelope(release.KeySet{Version: 1, SigningKeys: []release.SigningKey{{Public: rootKey(10).Public().(ed25519.PublicKey)}},
		IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)})
	require.NoError(t, err)
	ks, err = release.Sign(ks, rootKey(1))
	require.NoError(t, err)
	_, err = a.Releases().PublishKeySet(ctx, actor, ks, "")
	require.NoError(t, err)
	body := []byte("rap-node-agent 1.0.0 for the console")
	sum := sha256.Sum256(body)
	art := release.Artifact{OS: "linux", Arch: "amd64", SHA256: hex.EncodeToString(sum[:]), Size: int64(len(body))}
	me, err := release.NewManifestEnvelope(release.Manifest{Product: release.ProductNodeAgent, Version: "1.0.0", Channels: []release.Channel{release.ChannelCandidate},
		Artifacts: []release.Artifact{art}, Provenance: release.Provenance{SourceRevision: "console", BuildTime: now}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)})
	require.NoError(t, err)
	me, err = release.Sign(me, rootKey(10))
	require.NoError(t, err)
	_, err = a.Releases().Publish(ctx, actor, me, "")
	require.NoError(t, err)
	_, err = a.Releases().UploadChunk(ctx, actor, art.SHA256, 0, body)
	require.NoError(t, err)
}

func storeFilter(action string) store.AuditFilter { return store.AuditFilter{Action: action} }

func pageAll() store.Page { return store.Page{Limit: 500} }
