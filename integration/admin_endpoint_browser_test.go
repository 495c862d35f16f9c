package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// browserCert writes a self-signed ECDSA certificate for 127.0.0.1 and its
// key under t.TempDir(): browsers do not accept the node identity
// certificate (Ed25519), so an endpoint for browsers is given one
// (--admin-cert/--admin-key).
func browserCert(t *testing.T) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "admin endpoint test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return certFile, keyFile
}

// TestAdminEndpointInBrowser (spec: Admin Endpoint Placement; the browser
// cookie path) runs a real authority with PostgreSQL and a real agent
// process whose Cluster Admin Endpoint serves a browser certificate. A
// headless Chromium opens the endpoint (its pages have no script at all):
// a page read without a session is refused 401 by the authorities; the
// admin logs in on the endpoint's own login page with password + TOTP, and
// the authorities' session cookie lands on the endpoint's origin (host-only,
// Secure, HttpOnly, SameSite=Strict, Path=/); pages are read with it; a group
// created through a page's form is audited once with the admin's identity.
// Posts from another origin are refused by the endpoint, and a cookie
// request without the endpoint's CSRF evidence by the authorities. Logging
// out clears the cookie and ends the session on the authorities: the old
// cookie no longer reads a page. Screenshots go to t.TempDir() (or
// $RAP_SCREENSHOTS when set).
func TestAdminEndpointInBrowser(t *testing.T) {
	exe := chromiumPath(t)
	clock := &consoleClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.Now}
	})
	d := g.Leader(15 * time.Second)
	ctx := context.Background()
	rig := newAdminRig(t, g, "brw", 1)
	a := rig.enroll("brw-a", apiAddrs(g))
	certFile, keyFile := browserCert(t)
	a.extra = []string{"--admin-cert", certFile, "--admin-key", keyFile}
	addr := freePort(t)
	a.runAdmin("can_accept_client_ingress,can_route_mesh", addr)
	rig.assign(a.node, "admin-ingress")
	rig.assign(a.node, "core-mesh")
	rig.waitServing(a)

	// The platform owner account with TOTP (from here on the owner API
	// token no longer works: every admin call needs a session).
	ad := d.Auth.Admin()
	acct, _, err := ad.BootstrapOwner(ctx, "owner")
	require.NoError(t, err)
	const password = "admin endpoint browser password"
	secret, err := ad.DemoEnroll(ctx, "owner", password)
	require.NoError(t, err)

	shots := os.Getenv("RAP_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	require.NoError(t, os.MkdirAll(shots, 0o755))
	opts := append([]chromedp.ExecAllocatorOption{}, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.Headless,
		chromedp.ExecPath(exe), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1100, 800), chromedp.UserDataDir(t.TempDir()))
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// The first action starts the browser; it must not run under a timeout.
	require.NoError(t, chromedp.Do(bctx, chromedp.Navigate("about:blank")))
	tctx, cancelT := context.WithTimeout(bctx, 120*time.Second)
	defer cancelT()
	base := "https://" + addr
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
	// textOf reads an element's text with a DevTools evaluation (the pages
	// run no script of their own; their CSP does not apply to DevTools).
	textOf := func(sel string) chromedp.Action[string] {
		q, _ := json.Marshal(sel)
		return chromedp.EvaluateAsDevTools[string](`(document.querySelector(` + string(q) + `) || {innerText: ""}).innerText`)
	}
	// waitAt polls until the page is at url (the path after the endpoint's
	// origin) and sel's text contains want: a form post navigates, and a
	// query against the document it leaves can hang, so each try is bounded.
	waitAt := func(path, sel, want string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			deadline := time.Now().Add(30 * time.Second)
			var loc, got string
			for time.Now().Before(deadline) {
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				l, err := chromedp.Location()(actx, tg)
				if err == nil {
					loc = l
					if l == base+path {
						if s, err := textOf(sel)(actx, tg); err == nil {
							got = s
						}
					}
				}
				cancel()
				if loc == base+path && strings.Contains(got, want) {
					return nil
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				time.Sleep(150 * time.Millisecond)
			}
			actx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			page, perr := textOf("body")(actx, tg)
			if perr != nil {
				page = perr.Error()
			}
			if buf, err := chromedp.FullScreenshot(100)(actx, tg); err == nil {
				_ = os.WriteFile(filepath.Join(shots, "failed.png"), buf, 0o644)
			}
			return fmt.Errorf("never at %s with %q in %s (last at %s, text %q, page %q)", path, want, sel, loc, got, page)
		})
	}
	text := func(sel string) string {
		s, err := chromedp.Run(tctx, textOf(sel))
		require.NoError(t, err)
		return s
	}
	sessionCookie := func() *network.Cookie {
		var cs []*network.Cookie
		require.NoError(t, chromedp.Do(tctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			res, err := cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{base + "/"}})
			cs = res.Cookies
			return err
		})))
		for _, c := range cs {
			if c.Name == authn.SessionCookieName {
				return c
			}
		}
		return nil
	}

	// 1. Without a session the authorities refuse the page's source; the
	// endpoint has no credential of its own.
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(base+"/ui/roles"), chromedp.WaitVisible(css("#error")), shot("01-no-session")))
	require.Contains(t, text("#error"), "401")
	require.Nil(t, sessionCookie())

	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // the test's self-signed browser certificate
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(hc.CloseIdleConnections)
	post := func(path, ctype, body, session string, hdr map[string]string) (int, string) {
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", ctype)
		if session != "" {
			req.AddCookie(&http.Cookie{Name: authn.SessionCookieName, Value: session})
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// A wrong password is refused on the endpoint's login page (the
	// authorities' 401), and no cookie is set.
	start := time.Now()
	st, b := post("/login", "application/x-www-form-urlencoded", url.Values{"username": {"owner"}, "password": {"wrong"}, "totp_code": {"000000"}}.Encode(), "", nil)
	require.Equal(t, http.StatusUnauthorized, st, "%s (after %s)", b, time.Since(start))
	require.Contains(t, b, "bad_credentials")

	// 2. Log in on the endpoint's login page: password + TOTP.
	require.NoError(t, chromedp.Do(tctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(css("#login-form")),
		chromedp.SendKeys(css("#login-user"), "owner"),
		chromedp.SendKeys(css("#login-password"), password),
		chromedp.SendKeys(css("#login-totp"), clock.code(t, secret)),
		shot("02-login"),
		chromedp.Click(css("#login-submit")),
		waitAt("/", "nav", "Inventory groups"),
	))
	c := sessionCookie()
	require.NotNil(t, c, "the session cookie is set for the endpoint's origin")
	require.True(t, c.Secure)
	require.True(t, c.HTTPOnly)
	require.Equal(t, "/", c.Path)
	require.Equal(t, "127.0.0.1", c.Domain, "host-only: no Domain attribute")
	require.Equal(t, network.CookieSameSiteStrict, c.SameSite)
	sessionValue := c.Value

	// 3. Pages read with the cookie.
	require.NoError(t, chromedp.Do(tctx, chromedp.Click(css("#nav-roles")), waitAt("/ui/roles", "#page-roles", "Role assignments"), shot("03-roles")))
	body := text("main")
	require.Contains(t, body, a.node)
	require.Contains(t, body, "admin-ingress")
	require.NoError(t, chromedp.Do(tctx, chromedp.Click(css("#nav-overview")), waitAt("/ui/overview", "#page-overview", "Overview")))
	require.Contains(t, text("main"), "brw")

	// 4. A mutation through the groups page's form: the browser posts it
	// with the cookie; the endpoint sends it on as JSON with its CSRF
	// evidence; the authorities check the origin (the endpoint's) and audit
	// it as the admin.
	require.NoError(t, chromedp.Do(tctx,
		chromedp.Navigate(base+"/ui/groups"),
		chromedp.WaitVisible(css(`form[action="/ui/groups/forms/1"] input[name="name"]`)),
		chromedp.SendKeys(css(`form[action="/ui/groups/forms/1"] input[name="name"]`), "via-browser"),
		chromedp.Click(css(`form[action="/ui/groups/forms/1"] button`)),
		waitAt("/ui/groups", "main", "via-browser"),
		shot("04-group-created"),
	))
	evs, err := d.Auth.ListAudit(ctx, store.AuditFilter{Action: "group.create"}, store.Page{Limit: 50})
	require.NoError(t, err)
	var mine []store.AuditEvent
	for _, ev := range evs {
		if strings.Contains(string(ev.Details), "via-browser") {
			mine = append(mine, ev)
		}
	}
	require.Len(t, mine, 1, "applied and audited once")
	require.Equal(t, acct.ID, mine[0].Actor, "audited as the admin")
	require.Equal(t, "user", mine[0].ActorKind)
	require.Equal(t, "ok", mine[0].Outcome)

	// 5. CSRF: with the admin's cookie, a post from another origin is
	// refused by the endpoint, and a raw API post without the endpoint's
	// evidence (no X-RAP-Request, no token) by the authorities.
	form := url.Values{"name": {"cross-site"}}.Encode()
	st, b = post("/ui/groups/forms/1", "application/x-www-form-urlencoded", form, sessionValue, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	require.Equal(t, http.StatusForbidden, st, b)
	st, b = post("/v1/clusters/brw/groups", "application/json", `{"name":"raw-no-csrf"}`, sessionValue, map[string]string{"Origin": base, "Sec-Fetch-Site": "same-origin"})
	require.Equal(t, http.StatusForbidden, st, b)
	require.Contains(t, b, "csrf")
	evs, err = d.Auth.ListAudit(ctx, store.AuditFilter{Action: "group.create"}, store.Page{Limit: 50})
	require.NoError(t, err)
	require.Len(t, evs, 1, "the refused posts changed nothing")

	// 6. Log out: the cookie is cleared and the session ended on the
	// authorities (the old cookie value reads nothing any more).
	require.NoError(t, chromedp.Do(tctx,
		chromedp.Click(css("#logout")),
		waitAt("/login", "#page-login", "Log in"),
		shot("05-logged-out"),
	))
	require.Nil(t, sessionCookie(), "logout clears the cookie")
	require.NoError(t, chromedp.Do(tctx, chromedp.Navigate(base+"/ui/roles"), chromedp.WaitVisible(css("#error"))))
	require.Contains(t, text("#error"), "401")
	req, err := http.NewRequest(http.MethodGet, base+"/ui/roles", nil)
	require.NoError(t, err)
	req.AddCookie(&http.Cookie{Name: authn.SessionCookieName, Value: sessionValue})
	resp, err := hc.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the session ended on the authorities")
	lo, err := d.Auth.ListAudit(ctx, store.AuditFilter{Action: "auth.logout"}, store.Page{Limit: 10})
	require.NoError(t, err)
	require.Len(t, lo, 1)
	require.Equal(t, acct.ID, lo[0].Actor)
	t.Logf("screenshots in %s", shots)
}
