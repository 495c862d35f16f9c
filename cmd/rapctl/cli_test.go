package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/internal/authtest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// cleanEnv gives rapctl no settings from the environment or a config file.
func cleanEnv(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rapctl.json")
	t.Setenv("RAPCTL_CONFIG", p)
	for _, e := range envNames {
		t.Setenv(e.name, "")
		t.Setenv(e.old, "")
	}
	return p
}

// cli runs rapctl in-process and returns stdout, stderr and the exit code.
func cli(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := execute(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

// TestCLIHelpGolden: the help of the root and of typical commands (with
// examples, arguments, flags and the exit codes) is what testdata holds.
func TestCLIHelpGolden(t *testing.T) {
	cleanEnv(t)
	for name, args := range map[string][]string{
		"root":         {"--help"},
		"node-show":    {"node", "show", "--help"},
		"token-create": {"help", "token", "create"},
		"audit-list":   {"audit", "list", "-h"},
		"vpn-lease":    {"vpn", "lease", "--help"},
	} {
		out, errOut, code := cli(args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		if name == "root" {
			// The command list grows with every new command; the golden
			// file holds the rest (TestCLIReferenceIsCurrent covers the list).
			out = out[:strings.Index(out, "Available Commands:")]
		}
		golden := filepath.Join("testdata", "help", name+".golden")
		if *update {
			require.NoError(t, os.WriteFile(golden, []byte(out), 0o644))
			continue
		}
		want, err := os.ReadFile(golden)
		require.NoError(t, err, "run go test -run TestCLIHelpGolden -update ./cmd/rapctl")
		require.Equal(t, string(want), out, "help for %v changed: run go test -run TestCLIHelpGolden -update ./cmd/rapctl", args)
	}
}

// TestCLIEveryCommandHasHelpAndExample walks the whole tree: every runnable
// command has a description and an example.
func TestCLIEveryCommandHasHelpAndExample(t *testing.T) {
	cleanEnv(t)
	root := newRoot(new(bytes.Buffer), new(bytes.Buffer))
	n := 0
	for _, c := range allCommands(root) {
		if c.Hidden || isGroup(c) || c.Name() == "help" || strings.HasPrefix(c.CommandPath(), "rapctl completion") {
			continue
		}
		n++
		require.NotEmpty(t, c.Short, c.CommandPath())
		require.NotEmpty(t, c.Example, "%s has no example", c.CommandPath())
		require.Contains(t, c.Example, "rapctl ", c.CommandPath())
	}
	require.Greater(t, n, len(commands), "every table entry is a command")
}

// TestCLIReferenceIsCurrent: docs/cli.md is what `rapctl gen-docs` prints.
func TestCLIReferenceIsCurrent(t *testing.T) {
	cleanEnv(t)
	out, errOut, code := cli("gen-docs")
	require.Equal(t, 0, code, errOut)
	want, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	require.NoError(t, err)
	require.True(t, string(want) == out, "docs/cli.md is stale: run `make docs`")
	for _, c := range commands {
		require.Contains(t, out, "## rapctl "+c.path+"\n", "the reference documents %q", c.path)
	}
}

// TestCLIUsageErrors: wrong invocations exit 2 with a message naming the
// mistake, before any request is made.
func TestCLIUsageErrors(t *testing.T) {
	cleanEnv(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "yaml2", "cluster", "list"}, `invalid -o "yaml2"`},
		{[]string{"cluster", "list", "--output=xml"}, `invalid -o "xml"`},
		{[]string{"mesh", "ping", "n1", "-o", "csv"}, `invalid -o "csv"`},
		{[]string{"release", "inspect", "x.json", "--output", "csv"}, `invalid -o "csv"`},
		{[]string{"mesh", "ping", "n1", "-o", "yaml"}, "rapctl mesh ping prints -o table|json only"},
		{[]string{"release", "inspect", "x.json", "-o", "json"}, "rapctl release inspect prints -o table only"},
		{[]string{"nosuch"}, `unknown command "nosuch"`},
		{[]string{"node", "nosuch"}, `unknown command "nosuch"`},
		{[]string{"cluster", "list", "--bogus"}, "unknown flag: --bogus"},
		{[]string{"cluster", "show"}, "expects CLUSTER (got 0 arguments)"},
		{[]string{"node", "group", "a", "b", "c", "d"}, "expects CLUSTER NODE [GROUP]"},
		{[]string{"cluster", "list", "extra"}, "takes no arguments"},
		{[]string{"token", "create", "--ttl", "soon"}, `invalid argument "soon" for "--ttl"`},
		{[]string{"cluster", "list"}, "no authority address"},
		{[]string{"--server", "127.0.0.1:1", "partition", "split", "east"}, "expected arguments: --reason REASON"},
		{[]string{"--server", "127.0.0.1:1", "cluster", "list", "--limit", "0"}, "--limit must be a positive number"},
	} {
		out, errOut, code := cli(tc.args...)
		require.Equal(t, exitUsage, code, "%v: stdout %q stderr %q", tc.args, out, errOut)
		require.Contains(t, errOut, tc.want, "%v", tc.args)
	}
}

// TestCLIExitCodeMapping: the documented codes for the API's answers.
func TestCLIExitCodeMapping(t *testing.T) {
	require.Equal(t, exitOK, exitCode(nil))
	require.Equal(t, exitStepUp, exitCode(&apiclient.Error{Code: "step_up_required"}))
	require.Equal(t, exitNotLeader, exitCode(&apiclient.Error{Code: "not_leader"}))
	require.Equal(t, exitError, exitCode(&apiclient.Error{Code: "not_found"}))
	require.Equal(t, exitUsage, exitCode(errArgs("X")))
	require.Equal(t, exitError, exitCode(errors.New("io")))
}

// TestCLIConfigFileRefusesUnknownKeys: a typo in the config file is an
// error naming the key, not an ignored setting.
func TestCLIConfigFileRefusesUnknownKeys(t *testing.T) {
	p := cleanEnv(t)
	require.NoError(t, os.WriteFile(p, []byte(`{"servers":["a:1"],"tokne":"x"}`), 0o600))
	_, errOut, code := cli("cluster", "list")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `unknown key "tokne"`)
	require.NoError(t, os.WriteFile(p, []byte(`{"servers":"a:1","token":{"v":1}}`), 0o600))
	_, errOut, code = cli("cluster", "list")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `key "token": invalid value {"v":1}`)
	// config set repairs it; the old variable names still work, with a warning.
	_, errOut, code = cli("config", "set", "--server", "h:1", "--token", "t0k3n")
	require.Equal(t, 0, code, errOut)
	t.Setenv("RAP_CA_PIN", "sha256:old")
	out, errOut, code := cli("config", "show")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "RAP_CA_PIN is deprecated, use RAPCTL_CA_PIN")
	require.Contains(t, out, `"ca_pin":"sha256:old"`)
	require.Contains(t, out, `"servers":["h:1"]`)
	// --config names another file (anywhere on the line); its mistakes count too.
	other := filepath.Join(t.TempDir(), "other.json")
	require.NoError(t, os.WriteFile(other, []byte(`{"servers":["o:2"],"ca_pin":"sha256:x"}`), 0o600))
	t.Setenv("RAP_CA_PIN", "")
	out, errOut, code = cli("config", "show", "--config", other)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"servers":["o:2"]`)
	require.NoError(t, os.WriteFile(other, []byte(`{"server":["o:2"]}`), 0o600))
	_, errOut, code = cli("--config="+other, "cluster", "list")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, `config `+other+`: unknown key "server"`)
}

type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *stepClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *stepClock) code(t *testing.T, secret string) string {
	c.mu.Lock()
	c.t = c.t.Add(30 * time.Second)
	now := c.t
	c.mu.Unlock()
	s, err := authn.GenerateTOTPCode(secret, now, 30)
	require.NoError(t, err)
	return s
}

// enroll joins a node named name to the token's cluster through the agent API.
func enroll(t *testing.T, g *authtest.Group, pin, token, name, host string) string {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	nk, _ := ecdh.X25519().GenerateKey(rand.Reader)
	poll := make([]byte, 32)
	_, _ = rand.Read(poll)
	h := sha256.Sum256([]byte("rapctl-cli-" + host))
	ec, err := apiclient.New(apiclient.Options{Servers: []string{g.DS[0].APIAddr()}, CAPin: pin, ServerName: httpapi.ServerNameForPin(pin)})
	require.NoError(t, err)
	defer ec.Close()
	var st struct {
		Status string `json:"status"`
		NodeID string `json:"node_id"`
	}
	body := map[string]any{"token": token, "node_name": name, "host_fingerprint": hex.EncodeToString(h[:]), "public_key": []byte(priv.Public().(ed25519.PublicKey)),
		"noise_public_key": nk.PublicKey().Bytes(), "facts": map[string]any{"region": "eu"}, "poll_secret": poll}
	require.NoError(t, ec.Do(context.Background(), http.MethodPost, "/v1/agent/join", body, &st, nil))
	require.Equal(t, "approved", st.Status)
	return st.NodeID
}

// TestCLIAgainstAuthority drives the built command tree against a real
// authority: node names and id prefixes (unique, ambiguous, unknown),
// pagination and newest-first audit, -o yaml/wide, the health column, the
// enroll line of token create, exit codes of API errors and a piped login
// followed by a step-up-gated action.
func TestCLIAgainstAuthority(t *testing.T) {
	cleanEnv(t)
	clock := &stepClock{t: time.Now()}
	g := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) {
		c.Admin = authority.AdminOptions{Argon2: authn.FastInsecureArgon2Params(), Clock: clock.now}
	})
	d := g.Leader(15 * time.Second)
	conn := []string{"--server", d.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin}
	ctl := func(args ...string) (string, string, int) {
		return cli(append(append([]string{}, conn...), args...)...)
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, code := ctl(args...)
		require.Equal(t, 0, code, "%v\nstdout: %s\nstderr: %s", args, out, errOut)
		return out
	}

	// Flags anywhere: global flags after the command.
	out, errOut, code := cli("cluster", "create", "East", "--slug", "east", "--server", d.APIAddr(), "--token", g.Token, "--ca-pin", g.Pin, "-o", "json")
	require.Equal(t, 0, code, errOut)
	var cl struct {
		ID    string `json:"id"`
		CAPin string `json:"ca_pin"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &cl))

	// token create prints a ready-to-run enroll line.
	out = ok("token", "create", "--cluster", "east", "--max-uses", "5", "--auto-approve", "--allowed-roles", "relay-node")
	require.Contains(t, out, "rap-node-agent enroll --authority "+d.APIAddr()+" --token rapjt.")
	require.Contains(t, out, "--ca-pin "+cl.CAPin)
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("token", "create", "--cluster", "east", "--max-uses", "5", "--auto-approve", "--allowed-roles", "relay-node", "-o", "json")), &tok))
	require.NotContains(t, ok("token", "create", "--cluster", "east", "-o", "json"), "rap-node-agent enroll", "JSON stays the API's answer")

	a := enroll(t, g, cl.CAPin, tok.Token, "edge-a", "a")
	b := enroll(t, g, cl.CAPin, tok.Token, "edge-b", "b")
	dup1 := enroll(t, g, cl.CAPin, tok.Token, "twin", "t1")
	dup2 := enroll(t, g, cl.CAPin, tok.Token, "twin", "t2")

	// Names and unique id prefixes resolve; the same node either way.
	var byName, byPrefix map[string]any
	require.NoError(t, json.Unmarshal([]byte(ok("node", "show", "edge-a", "-o", "json")), &byName))
	require.NoError(t, json.Unmarshal([]byte(ok("-o", "json", "node", "show", uniquePrefix(a, []string{b, dup1, dup2}))), &byPrefix))
	require.Equal(t, a, byName["id"])
	require.Equal(t, a, byPrefix["id"])
	require.Contains(t, ok("node", "disable", "east", "edge-b"), b, "NODE resolved in a write")
	require.Contains(t, ok("node", "enable", "east", b[:13]), b)
	// Ambiguous and unknown names are errors, never an empty table.
	out, errOut, code = ctl("node", "show", "twin")
	require.Equal(t, exitError, code, out)
	require.Contains(t, errOut, `node "twin" is ambiguous`)
	require.Contains(t, errOut, dup1)
	require.Contains(t, errOut, dup2)
	out, errOut, code = ctl("node", "heartbeats", "nope")
	require.Equal(t, exitError, code, out)
	require.Empty(t, out)
	require.Contains(t, errOut, `node "nope": no node has this name or id prefix`)
	out, errOut, code = ctl("service", "list", "east", "--node", "nope")
	require.Equal(t, exitError, code, out)
	require.Contains(t, errOut, `node "nope"`)

	// Shell completion offers node names (with their ids).
	out = ok("__complete", "node", "show", "")
	require.Contains(t, out, "edge-a\t"+a)
	require.Contains(t, ok("__complete", "service", "list", "east", "--node", ""), "twin\t"+dup1)

	// The audit API's newest-first cursor and its refusal of a bad order.
	owner := g.Client(d)
	var page struct {
		Items []struct {
			ID int64 `json:"id"`
		} `json:"items"`
	}
	require.NoError(t, owner.Do(context.Background(), http.MethodGet, "/v1/audit?order=newest&limit=2", nil, &page, nil))
	require.Len(t, page.Items, 2)
	first := page.Items[1].ID
	require.NoError(t, owner.Do(context.Background(), http.MethodGet, "/v1/audit?order=newest&limit=2&before_id="+strconv.FormatInt(first, 10), nil, &page, nil))
	require.Len(t, page.Items, 2)
	require.Less(t, page.Items[0].ID, first)
	err := owner.Do(context.Background(), http.MethodGet, "/v1/audit?order=sideways", nil, nil, nil)
	var ae *apiclient.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "invalid_argument", ae.Code)

	// node list: a health column (no heartbeats yet: none); wide adds fields; yaml parses.
	out = ok("node", "list", "--cluster", "east")
	require.Contains(t, strings.Split(out, "\n")[0], "HEALTH")
	require.Contains(t, out, "none")
	require.Contains(t, strings.Split(ok("node", "list", "-o", "wide"), "\n")[0], "HOST_FINGERPRINT")
	var y struct {
		Items []struct {
			ID   string `yaml:"id"`
			Name string `yaml:"name"`
		} `yaml:"items"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(ok("node", "list", "-o", "yaml")), &y))
	require.Len(t, y.Items, 4)

	// Pagination: more clusters than a page; --limit caps and says so.
	for i := 0; i < 6; i++ {
		ok("cluster", "create", "C"+string(rune('a'+i)), "--slug", "c"+string(rune('a'+i)))
	}
	var all struct {
		Items []map[string]any `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("cluster", "list", "-o", "json")), &all))
	require.Len(t, all.Items, 7)
	out, errOut, code = ctl("cluster", "list", "--limit", "3", "-o", "json")
	require.Equal(t, 0, code, errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &all))
	require.Len(t, all.Items, 3)
	require.Contains(t, errOut, "showing the first 3; more exist")
	require.NoError(t, json.Unmarshal([]byte(ok("cluster", "list", "--limit", "3", "--all", "-o", "json")), &all))
	require.Len(t, all.Items, 7)

	// audit list: newest first, --since, pages.
	var ev struct {
		Items []struct {
			ID     float64 `json:"id"`
			Action string  `json:"action"`
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal([]byte(ok("audit", "list", "-o", "json")), &ev))
	require.Greater(t, len(ev.Items), 8)
	for i := 1; i < len(ev.Items); i++ {
		require.Greater(t, ev.Items[i-1].ID, ev.Items[i].ID, "newest first")
	}
	newest := ev.Items[0].ID
	require.NoError(t, json.Unmarshal([]byte(ok("audit", "list", "--limit", "2", "-o", "json")), &ev))
	require.Len(t, ev.Items, 2)
	require.Equal(t, newest, ev.Items[0].ID)
	require.NoError(t, json.Unmarshal([]byte(ok("audit", "list", "--since", "1h", "--action", "cluster.create", "-o", "json")), &ev))
	require.Len(t, ev.Items, 7)
	require.NoError(t, json.Unmarshal([]byte(ok("audit", "list", "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "-o", "json")), &ev))
	require.Empty(t, ev.Items)
	_, errOut, code = ctl("audit", "list", "--since", "yesterday")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "--since")

	// API errors exit 1.
	_, errOut, code = ctl("cluster", "show", "nosuch")
	require.Equal(t, exitError, code)
	require.Contains(t, errOut, "rapctl: not_found:")

	// A platform owner with MFA logs in from a pipe; a session's high-risk
	// action without step-up exits 3, after step-up it succeeds.
	ad := d.Auth.Admin()
	_, _, err = ad.BootstrapOwner(context.Background(), "owner")
	require.NoError(t, err)
	const password = "rapctl cli test password"
	secret, err := ad.DemoEnroll(context.Background(), "owner", password)
	require.NoError(t, err)
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	_, err = pw.WriteString("owner\n" + password + "\n" + clock.code(t, secret) + "\n")
	require.NoError(t, err)
	require.NoError(t, pw.Close())
	stdinFile, stdinReader = pr, nil
	t.Cleanup(func() { stdinFile, stdinReader = os.Stdin, nil; pr.Close() })
	out, errOut, code = cli("--server", d.APIAddr(), "--ca-pin", g.Pin, "login")
	require.Equal(t, 0, code, "piped login: %s %s", out, errOut)
	require.Contains(t, out, "logged in as owner")
	require.Contains(t, errOut, "Password: ")
	// The session is saved; no --token from here on.
	sess := []string{"--server", d.APIAddr()}
	out, errOut, code = cli(append(sess, "node", "revoke", "east", "edge-a", "--reason", "test")...)
	require.Equal(t, exitStepUp, code, "stdout %s stderr %s", out, errOut)
	require.Contains(t, errOut, "rapctl: step_up_required:")
	out, errOut, code = cli(append(sess, "step-up", "POST", "/v1/clusters/east/nodes/"+a+"/revoke", "--totp", clock.code(t, secret))...)
	require.Equal(t, 0, code, "%s %s", out, errOut)
	out, errOut, code = cli(append(sess, "node", "revoke", "east", "edge-a", "--reason", "test")...)
	require.Equal(t, 0, code, "%s %s", out, errOut)
	require.Contains(t, out, "revoked")

	// On a terminal the password is read without echo (the user name and
	// the code are echoed as typed).
	master, slave := openPTY(t)
	stdinFile, stdinReader = slave, nil
	echo := func() bool {
		tio, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
		require.NoError(t, err)
		return tio.Lflag&unix.ECHO != 0
	}
	done := make(chan int, 1)
	var ttyOut, ttyErr string
	go func() {
		var code int
		ttyOut, ttyErr, code = cli("--server", d.APIAddr(), "--ca-pin", g.Pin, "login")
		done <- code
	}()
	_, err = master.WriteString("owner\n")
	require.NoError(t, err)
	g.Eventually(5*time.Second, "echo off for the password", func() bool { return !echo() })
	_, err = master.WriteString(password + "\n")
	require.NoError(t, err)
	g.Eventually(5*time.Second, "echo back on after the password", echo)
	_, err = master.WriteString(clock.code(t, secret) + "\n")
	require.NoError(t, err)
	select {
	case code = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("login on a terminal did not finish")
	}
	require.Equal(t, 0, code, "%s %s", ttyOut, ttyErr)
	require.NoError(t, master.SetReadDeadline(time.Now().Add(500*time.Millisecond)))
	var seen []byte
	buf := make([]byte, 4096)
	for {
		n, err := master.Read(buf)
		seen = append(seen, buf[:n]...)
		if err != nil {
			break
		}
	}
	require.Contains(t, string(seen), "owner", "the user name is echoed")
	require.NotContains(t, string(seen), password, "the password is not echoed")

	// A piped login that ends early says which answer was missing.
	pr2, pw2, err := os.Pipe()
	require.NoError(t, err)
	_, _ = pw2.WriteString("owner\n")
	pw2.Close()
	stdinFile, stdinReader = pr2, nil
	_, errOut, code = cli("--server", d.APIAddr(), "--ca-pin", g.Pin, "login")
	require.Equal(t, exitError, code)
	require.Contains(t, errOut, `no answer to "Password" on standard input`)
}

// allCommands lists every command under c.
func allCommands(c *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	for _, sub := range c.Commands() {
		out = append(out, sub)
		out = append(out, allCommands(sub)...)
	}
	return out
}

// uniquePrefix is the shortest prefix of id no other id shares (at least 4).
func uniquePrefix(id string, others []string) string {
	for n := 4; n <= len(id); n++ {
		clash := false
		for _, o := range others {
			if strings.HasPrefix(o, id[:n]) {
				clash = true
			}
		}
		if !clash {
			return id[:n]
		}
	}
	return id
}

// TestCLIVersionAndCompletion: version two ways, and completion scripts for
// the three shells.
func TestCLIVersionAndCompletion(t *testing.T) {
	cleanEnv(t)
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, errOut, code := cli(args...)
		require.Equal(t, 0, code, errOut)
		require.Equal(t, "rapctl "+version+"\n", out)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := cli("completion", sh)
		require.Equal(t, 0, code, errOut)
		require.Contains(t, out, "rapctl", sh)
		require.Greater(t, len(out), 1000, sh)
	}
	// Completion of -o values and of sub-commands (what the scripts call).
	out, _, code := cli("__complete", "cluster", "list", "-o", "")
	require.Equal(t, 0, code)
	for _, f := range outputFormats {
		require.Contains(t, out, f+"\n")
	}
	out, _, _ = cli("__complete", "node", "")
	require.Contains(t, out, "list\t")
	require.Contains(t, out, "revoke\t")
}

// openPTY opens a pseudo-terminal pair (master, slave).
func openPTY(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { master.Close() })
	var n int
	rc, err := master.SyscallConn()
	require.NoError(t, err)
	require.NoError(t, rc.Control(func(fd uintptr) {
		if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err == nil {
			n, err = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}))
	require.NoError(t, err)
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// `service set --config JSON` is the service's configuration, not the
// settings file: the global --config is found everywhere else.
func TestScanConfigFlagLeavesServiceConfig(t *testing.T) {
	require.Equal(t, "", scanConfigFlag([]string{"--server", "h:1", "service", "set", "demo", "n1", "vpn-exit", "--config", "{}"}))
	require.Equal(t, "/tmp/s.json", scanConfigFlag([]string{"node", "list", "--config", "/tmp/s.json"}))
	require.Equal(t, "/tmp/s.json", scanConfigFlag([]string{"--config=/tmp/s.json", "cluster", "list"}))
}
