package integration

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// TestOrgConsoleInBrowser: headless Chromium logs in to the organization
// console as organization A's admin (password + TOTP), opens every page
// (overview, endpoints, resources, policies, users, sessions, audit), invites
// a user with step-up, and the source of every page is checked against every
// node id, node name, host fingerprint, cluster id/slug/name and peer key in
// the database and every id and name of organization B. Screenshots go to a
// temporary directory.
func TestOrgConsoleInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	clock := &consoleClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.Now}
	})
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	sys := authority.Actor{ID: "test", Kind: "system"}

	// A node in a cluster backs both organizations' endpoints.
	cl, err := d.Auth.CreateCluster(ctx, sys, authority.CreateClusterRequest{Name: "Zulu Cluster", Slug: "zulu-cl"}, "")
	require.NoError(t, err)
	tok, err := d.Auth.CreateJoinToken(ctx, sys, authority.CreateTokenRequest{Cluster: "zulu-cl", MaxUses: 1}, "")
	require.NoError(t, err)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte("edge-org-console"))
	st, err := d.Auth.SubmitJoinRequest(ctx, "127.0.0.1", cl.ID, authority.JoinRequestInput{
		Token: tok.Token, NodeName: "edge-org-console", HostFingerprint: hex.EncodeToString(h[:]), PublicKey: priv.Public().(ed25519.PublicKey),
		NoisePublicKey: nk.PublicKey().Bytes(), Facts: json.RawMessage(`{"os":"linux","hostname":"edge-org-console.internal"}`),
		Capabilities: []domain.Capability{"can_route_mesh", "can_accept_node_ingress"}, RequestedRoles: []domain.Role{domain.RoleRelayNode}, PollSecret: poll})
	require.NoError(t, err)
	ap, err := d.Auth.ApproveJoinRequest(ctx, sys, st.RequestID, "")
	require.NoError(t, err)
	nodeID := ap.NodeID

	o := d.Auth.Orgs()
	const password = "organization console password"
	type tenant struct {
		org    store.Organization
		admin  store.AdminUser
		secret string
		values []string
		access string
	}
	mk := func(slug string) *tenant {
		tn := &tenant{}
		tn.org, err = d.Auth.CreateOrganization(ctx, sys, authority.CreateOrganizationRequest{Name: strings.ToUpper(slug[:1]) + slug[1:] + " Ltd", Slug: slug}, "")
		require.NoError(t, err)
		ep, err := o.PublishEndpoint(ctx, sys, slug, authority.PublishEndpointRequest{Name: slug + "-exit", Kind: "egress", Protocol: "tcp", Region: "eu-central",
			Nodes: []authority.EndpointBacker{{ClusterID: cl.ID, NodeID: nodeID}}})
		require.NoError(t, err)
		tn.admin, _, _, err = o.InviteAdmin(ctx, sys, slug, "admin", "")
		require.NoError(t, err)
		tn.secret, err = d.Auth.Admin().DemoEnroll(ctx, tn.admin.Name, password)
		require.NoError(t, err)
		p := authority.OrgPrincipal{User: tn.admin, Org: tn.org}
		actor := authority.Actor{ID: tn.admin.ID, Kind: "user"}
		res, err := o.CreateResource(ctx, p, actor, authority.ResourceRequest{Name: slug + "-wiki", Protocol: "https", Address: slug + "-wiki.lan", Port: 443, Endpoint: ep.ID})
		require.NoError(t, err)
		pol, err := o.CreatePolicy(ctx, p, actor, authority.PolicyRequest{Name: slug + "-staff", Subjects: []string{"group:staff"}, Resources: []string{res.ID}, Endpoints: []string{ep.ID}})
		require.NoError(t, err)
		noMFA := false
		own, err := o.CreatePolicy(ctx, p, actor, authority.PolicyRequest{Name: slug + "-admin", Subjects: []string{"user:" + tn.admin.Name},
			Resources: []string{res.ID}, Endpoints: []string{ep.ID}, RequireMFA: &noMFA})
		require.NoError(t, err)
		acc, err := o.RequestAccess(ctx, p, actor, authority.AccessSessionRequest{Resource: res.Name})
		require.NoError(t, err)
		tn.access = acc.ID
		tn.values = []string{tn.org.ID, tn.org.Slug, tn.org.Name, tn.admin.ID, tn.admin.Name, ep.ID, ep.Name, res.ID, res.Name, res.Address, pol.ID, pol.Name,
			own.ID, own.Name, acc.ID}
		return tn
	}
	a, b := mk("alpha"), mk("bravo")

	// Every topology value in the database.
	topo := []string{nodeID, "edge-org-console", "edge-org-console.internal", hex.EncodeToString(h[:]), cl.ID, "zulu-cl", "Zulu Cluster"}
	for _, k := range [][]byte{priv.Public().(ed25519.PublicKey), nk.PublicKey().Bytes()} {
		topo = append(topo, base64.StdEncoding.EncodeToString(k), hex.EncodeToString(k))
	}
	var dbNodes []string
	rows, err := d.DB.Pool.Query(ctx, `SELECT id::text FROM nodes UNION ALL SELECT name FROM nodes UNION ALL SELECT id::text FROM clusters UNION ALL SELECT slug FROM clusters`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		dbNodes = append(dbNodes, s)
	}
	rows.Close()
	require.Subset(t, topo, dbNodes, "the forbidden set covers every node and cluster in the database")
	forbidden := append(append([]string{}, topo...), b.values...)

	shots := t.TempDir()
	opts := append([]chromedp.ExecAllocatorOption{}, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Headless,
		chromedp.ExecPath(exe), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	srv := httptest.NewUnstartedServer(d.API.Handler())
	srv.StartTLS()
	defer srv.Close()
	base := srv.URL
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
	checkSource := func(page string) {
		t.Helper()
		src, err := chromedp.Run(tctx, chromedp.OuterHTML(css("html")))
		require.NoError(t, err)
		for _, v := range forbidden {
			require.NotContains(t, src, v, "page %s holds a forbidden value", page)
		}
	}

	// Log in: the console lands on the organization's overview.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/org/"+a.org.Slug+"/"),
		chromedp.WaitVisible(css("#org-login-form")),
		chromedp.SendKeys(css("#login-user"), a.admin.Name),
		chromedp.SendKeys(css("#login-password"), password),
		chromedp.SendKeys(css("#login-totp"), clock.code(t, a.secret)),
		shot("01-login"),
		chromedp.Click(css("#login-submit")),
		waitText("#org-name", a.org.Name),
		waitText("#endpoint-health", "alpha-exit"),
		shot("02-overview"),
	)
	require.NoError(t, err)
	checkSource("overview")
	for _, pg := range []struct{ path, sel, want string }{
		{"endpoints", "#endpoints", "alpha-exit"},
		{"resources", "#resources", "alpha-wiki.lan"},
		{"policies", "#policies", "alpha-staff"},
		{"users", "#users", a.admin.Name},
		{"sessions", "#sessions", a.admin.Name},
		{"audit", "#audit", "org.policy.create"},
	} {
		err = chromedp.Do(tctx, chromedp.Navigate(base+"/org/"+a.org.ID+"/"+pg.path), waitText(pg.sel, pg.want), shot("03-"+pg.path))
		require.NoError(t, err, pg.path)
		checkSource(pg.path)
	}

	// Revoke an access session with step-up: it shows revoked at once.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/org/"+a.org.ID+"/sessions"),
		waitText("#access-"+a.access+" .status", "active"),
		chromedp.Click(css("#access-"+a.access+" button")),
		chromedp.WaitVisible(css("#stepup-code")),
		chromedp.SendKeys(css("#stepup-code"), clock.code(t, a.secret)),
		chromedp.Click(css("#stepup-submit")),
		waitText("#access-"+a.access+" .status", "revoked"),
		shot("03-access-revoked"),
	)
	require.NoError(t, err)
	checkSource("sessions after revoke")

	// Invite a user with step-up: the one-time setup secret is shown once.
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/org/"+a.org.ID+"/users"),
		chromedp.WaitVisible(css("#user-form")),
		chromedp.SendKeys(css("#user-form input[name=name]"), "carol"),
		chromedp.Click(css("#user-form button")),
		chromedp.WaitVisible(css("#stepup-code")),
		chromedp.SendKeys(css("#stepup-code"), clock.code(t, a.secret)),
		chromedp.Click(css("#stepup-submit")),
		waitText("#flash", "raps_setup_"),
		shot("04-invited"),
	)
	require.NoError(t, err)
	users, err := o.Users(ctx, authority.OrgPrincipal{User: a.admin, Org: a.org}, store.Page{})
	require.NoError(t, err)
	require.True(t, func() bool {
		for _, u := range users {
			if u.Name == "carol@alpha" {
				return true
			}
		}
		return false
	}(), "the invitation was made")

	// Carol finishes her setup in the (shared) setup page with the secret the
	// console showed, and continues in her organization's console.
	flash, err := chromedp.Run(tctx, chromedp.Text(css("#flash")))
	require.NoError(t, err)
	i := strings.Index(flash, "raps_setup_")
	require.GreaterOrEqual(t, i, 0)
	carolSecret := strings.Fields(flash[i:])[0]
	err = chromedp.Do(tctx,
		chromedp.Navigate(base+"/console/setup"),
		chromedp.WaitVisible(css("#setup-begin")),
		chromedp.SendKeys(css("#setup-user"), "carol@alpha"),
		chromedp.SendKeys(css("#setup-secret"), carolSecret),
		chromedp.Click(css("#setup-begin button")),
		chromedp.WaitVisible(css("#setup-complete")),
		waitText("#setup-totp-secret", ""),
	)
	require.NoError(t, err)
	totp, err := chromedp.Run(tctx, chromedp.Text(css("#setup-totp-secret")))
	require.NoError(t, err)
	require.NotEmpty(t, totp)
	err = chromedp.Do(tctx,
		chromedp.SendKeys(css("#setup-password"), "carol's long password"),
		chromedp.SendKeys(css("#setup-code"), clock.code(t, totp)),
		chromedp.Click(css("#setup-complete button")),
		chromedp.WaitVisible(css("#setup-done")),
		chromedp.Click(css("#setup-open")),
		waitText("#who", "carol@alpha (org_member)"),
		shot("05-member-overview"),
	)
	require.NoError(t, err)
	checkSource("member overview")

	// B's organization in the path answers like an unknown one.
	err = chromedp.Do(tctx, chromedp.Navigate(base+"/org/"+b.org.ID+"/"), waitText("div.banner.error", "not found"))
	require.NoError(t, err)
	checkSource("B's overview")
	t.Logf("screenshots in %s", shots)
}
