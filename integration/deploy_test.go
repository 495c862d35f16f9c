package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authn"
	"github.com/rap-fabric/core/internal/pgtest"
	"github.com/rap-fabric/core/internal/testwait"
)

// The fresh-host deploy test follows deploy/README.md step by step on
// "hosts" that are private mount namespaces: each has its own copy of /etc,
// an empty /var/lib and /usr/local, and a tmpfs on /run, so nothing touches
// the real host's files. systemd is not there: a "unit start" runs the unit
// file's ExecStart= line (parsed from deploy/systemd, so the test breaks when
// a unit drifts) with its User=, EnvironmentFile=, UMask=, StateDirectory=
// and RuntimeDirectory=. The hosts share the loopback network (ports from
// testport) and the test's PostgreSQL database.

// requireRootForDeploy skips the test without root (mount namespaces), and
// fails it instead when CI is set.
func requireRootForDeploy(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("deploy: the fresh-host test needs root (mount namespaces, useradd) and CI is set")
		}
		t.Skip("deploy: not root and CI unset, so skipped — run as root")
	}
	if err := exec.Command("unshare", "--mount", "--propagation", "private", "true").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("deploy: cannot create a mount namespace: %v (CI is set: this must work)", err)
		}
		t.Skipf("deploy: cannot create a mount namespace (%v); CI unset, so skipped", err)
	}
}

// host is one fresh machine: a mount namespace held open by a sleeping
// process; every command on the host enters it with nsenter.
type host struct {
	t    *testing.T
	name string
	root string // backing directories of the host's /etc, /var/lib, /usr/local
	pid  int
}

// hostSetup makes the private filesystem of a host inside its namespace.
const hostSetup = `set -e
H="$1"
mkdir -p "$H/etc" "$H/varlib" "$H/usrlocal/bin" "$H/usrlocal/sbin"
chmod 0755 "$H/etc" "$H/varlib" "$H/usrlocal" "$H/usrlocal/bin" "$H/usrlocal/sbin"
cp -a /etc/. "$H/etc/"
rm -rf "$H/etc/rap-fabric" "$H/etc/systemd/system/rap-"*
mount --bind "$H/etc" /etc
mount --bind "$H/varlib" /var/lib
mount --bind "$H/usrlocal" /usr/local
mount -t tmpfs -o mode=0755 tmpfs /run
echo ready
exec sleep 1000000
`

func newHost(t *testing.T, name string) *host {
	t.Helper()
	h := &host{t: t, name: name, root: filepath.Join(t.TempDir(), name)}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", hostSetup, "host-setup", h.root)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var se strings.Builder
	cmd.Stderr = &se
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err, "host %s: %s", name, se.String())
	require.Equal(t, "ready\n", line, se.String())
	h.pid = cmd.Process.Pid
	return h
}

// command is sh -c script on the host (as root), with env added.
func (h *host) command(script string, env ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", "--target", fmt.Sprint(h.pid), "--mount", "--", "sh", "-c", "set -e\n"+script)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// sh runs script on the host and returns its output; it must succeed.
func (h *host) sh(script string, env ...string) string {
	h.t.Helper()
	out, err := h.command(script, env...).CombinedOutput()
	require.NoError(h.t, err, "host %s:\n%s\noutput:\n%s", h.name, script, out)
	return string(out)
}

// bg is a background process on a host (a service, or a command that waits).
type bg struct {
	cmd  *exec.Cmd
	out  *syncBuf
	done chan struct{}
}

func (h *host) start(label, script string, env ...string) *bg {
	h.t.Helper()
	b := &bg{cmd: h.command(script, env...), out: &syncBuf{}, done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	require.NoError(h.t, b.cmd.Start())
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	h.t.Cleanup(func() {
		b.stop(syscall.SIGKILL)
		if h.t.Failed() {
			h.t.Logf("--- %s on %s:\n%s", label, h.name, b.out.String())
		}
	})
	return b
}

// stop sends sig to the process group and waits for the end.
func (b *bg) stop(sig syscall.Signal) {
	select {
	case <-b.done:
		return
	default:
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, sig)
	select {
	case <-b.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

func (b *bg) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// unit is what the test takes from a systemd unit file.
type unit struct {
	execStart, user, umask  string
	envFile                 string
	envOptional             bool
	stateDir, stateMode     string
	runtimeDir, runtimeMode string
	condition               string
	caps                    *string // CapabilityBoundingSet= (nil: not set)
	noNewPrivs              bool
}

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var u unit
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "ExecStart":
			u.execStart = v
		case "User":
			u.user = v
		case "UMask":
			u.umask = v
		case "EnvironmentFile":
			u.envOptional = strings.HasPrefix(v, "-")
			u.envFile = strings.TrimPrefix(v, "-")
		case "StateDirectory":
			u.stateDir = v
		case "StateDirectoryMode":
			u.stateMode = v
		case "RuntimeDirectory":
			u.runtimeDir = v
		case "RuntimeDirectoryMode":
			u.runtimeMode = v
		case "ConditionPathExists":
			u.condition = v
		case "CapabilityBoundingSet":
			c := v
			u.caps = &c
		case "NoNewPrivileges":
			u.noNewPrivs = v == "yes"
		}
	}
	require.NotEmpty(t, u.execStart, path)
	return u
}

// script is the shell text that does what systemd does for the unit's start.
func (u unit) script(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	if u.condition != "" {
		fmt.Fprintf(&b, "test -e %s || { echo 'condition failed: %s'; exit 1; }\n", u.condition, u.condition)
	}
	owner := "root"
	if u.user != "" {
		owner = u.user
	}
	if u.stateDir != "" {
		fmt.Fprintf(&b, "install -d -o %s -g %s -m %s /var/lib/%s\n", owner, owner, orDefault(u.stateMode, "0755"), u.stateDir)
	}
	if u.runtimeDir != "" {
		fmt.Fprintf(&b, "install -d -o %s -g %s -m %s /run/%s\n", owner, owner, orDefault(u.runtimeMode, "0755"), u.runtimeDir)
	}
	if u.envFile != "" {
		if u.envOptional {
			fmt.Fprintf(&b, "if [ -e %s ]; then set -a; . %s; set +a; fi\n", u.envFile, u.envFile)
		} else {
			fmt.Fprintf(&b, "set -a; . %s; set +a\n", u.envFile)
		}
	}
	if u.umask != "" {
		fmt.Fprintf(&b, "umask %s\n", u.umask)
	}
	// User=, NoNewPrivileges= and CapabilityBoundingSet= through setpriv.
	b.WriteString("exec setpriv")
	if u.user != "" {
		fmt.Fprintf(&b, " --reuid=%s --regid=%s --init-groups", u.user, u.user)
	}
	if u.noNewPrivs {
		b.WriteString(" --no-new-privs")
	}
	if u.caps != nil {
		set := "-all"
		for _, c := range strings.Fields(*u.caps) {
			set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		}
		fmt.Fprintf(&b, " --bounding-set %s --inh-caps -all", set)
	}
	fmt.Fprintf(&b, " %s\n", u.execStart)
	return b.String()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// readmeBlocks returns the sh code blocks of deploy/README.md.
func readmeBlocks(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../deploy/README.md")
	require.NoError(t, err)
	var b strings.Builder
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(data), -1) {
		b.WriteString(m[1])
	}
	return b.String()
}

// totpSteps hands out codes of strictly increasing TOTP steps (a code is
// single-use per step), waiting for the clock when the skew window of one
// step is used up.
type totpSteps struct {
	mu     sync.Mutex
	secret string
	last   int64
}

func (s *totpSteps) code(t *testing.T) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().Unix() / 30
	// Skew 1: the previous step is still accepted, but only until the
	// current one ends; the request (an Argon2id hash on a loaded machine
	// first) must land before then, so the previous step is used only
	// while more than 10 s of the current one remain.
	next := now - 1
	if time.Until(time.Unix((now+1)*30, 0)) < 10*time.Second {
		next = now
	}
	if s.last >= next {
		next = s.last + 1
	}
	for next > time.Now().Unix()/30+1 { // beyond the skew window: wait
		time.Sleep(time.Until(time.Unix((next-1)*30, 0)) + 200*time.Millisecond)
	}
	s.last = next
	c, err := authn.GenerateTOTPCode(s.secret, time.Unix(next*30, 0), 30)
	require.NoError(t, err)
	return c
}

// TestFreshHostDeploy installs the built binaries and the systemd layout on
// fresh hosts and follows deploy/README.md: three authorities (bootstrap,
// a join with the bootstrap owner token, and — after the owner has MFA — a
// join with a single-use authority join token), the owner's setup and login,
// a cluster and a join token, an agent enrolled, approved and started from
// its unit, and `rap-node-agent status` answering over the default socket
// /run/rap-node-agent/agent.sock.
func TestFreshHostDeploy(t *testing.T) {
	requireRootForDeploy(t)
	bin := binaries(t)
	dbURL := pgtest.New(t)
	readme := readmeBlocks(t)
	// The steps below run the README's commands; these must stay in it.
	for _, step := range []string{
		"sudo install -m 0755 bin/rap-authority bin/rap-node-agent bin/rapctl /usr/local/bin/",
		"sudo install -m 0644 deploy/systemd/*.service /etc/systemd/system/",
		"sudo install -d -m 0750 /etc/rap-fabric",
		"sudo useradd --system --home /var/lib/rap-authority --shell /usr/sbin/nologin rap-authority",
		"sudo chgrp rap-authority /etc/rap-fabric\n",
		"sudo install -d -o rap-authority -g rap-authority -m 0700 /var/lib/rap-authority",
		"sudo chown rap-authority /etc/rap-fabric/kek",
		"sudo chmod 0640 /etc/rap-fabric/authority.*; sudo chgrp rap-authority /etc/rap-fabric/authority.*",
		"sudo -u rap-authority rap-authority bootstrap --config /etc/rap-fabric/authority.json",
		"sudo -u rap-authority rap-authority bootstrap-owner --config /etc/rap-fabric/authority.json",
		"rapctl authority join-token create --ttl 15m",
		"login",
		"rapctl cluster create east",
		"rapctl token create --cluster east --ttl 30m",
		"sudo rap-node-agent enroll --authority",
		"--state /var/lib/rap-node-agent/state.db",
		"rapctl join-request approve <id>",
		"sudo rap-node-agent status",
	} {
		require.Contains(t, readme, step, "deploy/README.md no longer has the step the test runs")
	}
	authUnit := parseUnit(t, "../deploy/systemd/rap-authority.service")
	agentUnit := parseUnit(t, "../deploy/systemd/rap-node-agent.service")
	require.Contains(t, agentUnit.execStart, "/run/rap-node-agent/agent.sock")
	repo, err := filepath.Abs("..")
	require.NoError(t, err)

	// 1. Build and install (the binaries come from `go build` of this test).
	install := func(h *host) {
		h.sh(fmt.Sprintf(`cd %s
install -m 0755 %s/rap-authority %s/rap-node-agent %s/rapctl /usr/local/bin/
mkdir -p /etc/systemd/system
install -m 0644 deploy/systemd/*.service /etc/systemd/system/
install -d -m 0750 /etc/rap-fabric
/usr/local/bin/rap-authority --version`, repo, bin, bin, bin))
	}

	// 2. Authorities.
	type authHost struct {
		*host
		raft, api, metrics string
		svc                *bg
	}
	auths := make([]*authHost, 3)
	var kek string
	for i := range auths {
		a := &authHost{host: newHost(t, fmt.Sprintf("auth-%d", i+1)), raft: freePort(t), api: freePort(t), metrics: freePort(t)}
		auths[i] = a
		install(a.host)
		a.sh(`useradd --system --home /var/lib/rap-authority --shell /usr/sbin/nologin rap-authority
chgrp rap-authority /etc/rap-fabric
install -d -o rap-authority -g rap-authority -m 0700 /var/lib/rap-authority`)
		if i == 0 {
			a.sh(`head -c 32 /dev/urandom | od -An -tx1 | tr -d " \n" > /etc/rap-fabric/kek && chmod 0400 /etc/rap-fabric/kek`)
			kek = a.sh(`cat /etc/rap-fabric/kek`)
			require.Len(t, kek, 64)
		} else { // "copy the SAME file to the other two"
			a.sh(fmt.Sprintf(`printf %%s %s > /etc/rap-fabric/kek && chmod 0400 /etc/rap-fabric/kek`, kek))
		}
		a.sh(`chown rap-authority /etc/rap-fabric/kek`)
	}
	writeConfig := func(a *authHost, extra map[string]string, env string) {
		cfg := map[string]string{"id": a.name, "data-dir": "/var/lib/rap-authority", "database-url": dbURL,
			"raft-bind": a.raft, "api-listen": a.api, "hosts": "localhost", "kek-file": "/etc/rap-fabric/kek",
			// The test's hosts share one loopback: each needs its own
			// metrics port (a real host keeps the default 127.0.0.1:9464).
			"metrics-listen": a.metrics}
		for k, v := range extra {
			cfg[k] = v
		}
		js, err := json.Marshal(cfg)
		require.NoError(t, err)
		a.sh(fmt.Sprintf(`cat > /etc/rap-fabric/authority.json <<'JSON'
%s
JSON
cat > /etc/rap-fabric/authority.env <<'ENV'
RAP_AUTHORITY_HEARTBEAT_LATE_AFTER=15s
RAP_AUTHORITY_HEARTBEAT_STALE_AFTER=60s
RAP_AUTHORITY_HEARTBEAT_OFFLINE_AFTER=5m
RAP_AUTHORITY_HEARTBEAT_RETENTION=24h
%s
ENV
chmod 0640 /etc/rap-fabric/authority.*; chgrp rap-authority /etc/rap-fabric/authority.*`, js, env))
	}
	startService := func(a *authHost) {
		a.svc = a.start("rap-authority.service", authUnit.script(t))
	}

	// First host: bootstrap once, keep the owner token and pin, Ctrl-C.
	writeConfig(auths[0], nil, "")
	boot := auths[0].start("bootstrap", `exec setpriv --reuid=rap-authority --regid=rap-authority --init-groups rap-authority bootstrap --config /etc/rap-fabric/authority.json`)
	var bootOut struct {
		OwnerToken string `json:"owner_token"`
		CAPin      string `json:"ca_pin"`
	}
	testwait.Until(t, 30*time.Second, "bootstrap prints token and pin", func() bool {
		sc := bufio.NewScanner(strings.NewReader(boot.out.String()))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &bootOut) == nil && bootOut.OwnerToken != "" {
				return true
			}
		}
		return boot.exited()
	})
	require.NotEmpty(t, bootOut.OwnerToken, boot.out.String())
	boot.stop(syscall.SIGINT)
	startService(auths[0])

	// Second host: joins with the bootstrap owner token (no owner has MFA yet).
	writeConfig(auths[1], map[string]string{"join": auths[0].api, "ca-pin": bootOut.CAPin}, "RAP_AUTHORITY_JOIN_TOKEN="+bootOut.OwnerToken)
	startService(auths[1])

	members := func(n int) func() bool {
		return func() bool {
			c, err := apiclient.New(apiclient.Options{Servers: []string{auths[0].api}, CAPin: bootOut.CAPin, Timeout: 3 * time.Second})
			if err != nil {
				return false
			}
			defer c.Close()
			var st status
			if c.Do(context.Background(), http.MethodGet, "/v1/authority/status", nil, &st, nil) != nil || st.LeaderID == "" || len(st.Members) != n {
				return false
			}
			for _, m := range st.Members {
				if !m.Healthy {
					return false
				}
			}
			return true
		}
	}
	testwait.Until(t, 40*time.Second, "two healthy members", members(2))

	// 3. The platform owner: bootstrap-owner prints the setup secret; the
	// console's setup (its API) sets a password and enrolls TOTP.
	out := auths[0].sh(fmt.Sprintf(`setpriv --reuid=rap-authority --regid=rap-authority --init-groups rap-authority bootstrap-owner --config /etc/rap-fabric/authority.json --console-url https://%s/console/`, auths[0].api))
	m := regexp.MustCompile(`one-time setup secret[^\n]*\n\s*(\S+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	anon, err := apiclient.New(apiclient.Options{Servers: []string{auths[0].api, auths[1].api}, CAPin: bootOut.CAPin})
	require.NoError(t, err)
	defer anon.Close()
	ctx := context.Background()
	var enroll struct {
		Secret string `json:"totp_secret"`
	}
	require.NoError(t, anon.Do(ctx, http.MethodPost, "/v1/auth/setup/begin", map[string]any{"username": "owner", "setup_secret": m[1]}, &enroll, nil))
	require.NotEmpty(t, enroll.Secret)
	codes := &totpSteps{secret: enroll.Secret}
	const password = "fresh host deploy password"
	require.NoError(t, anon.Do(ctx, http.MethodPost, "/v1/auth/setup/complete", map[string]any{"username": "owner", "setup_secret": m[1],
		"password": password, "totp_code": codes.code(t)}, nil, nil))
	// The bootstrap owner token is refused from now on.
	owner, err := apiclient.New(apiclient.Options{Servers: []string{auths[0].api}, CAPin: bootOut.CAPin, Token: bootOut.OwnerToken})
	require.NoError(t, err)
	defer owner.Close()
	err = owner.Do(ctx, http.MethodGet, "/v1/clusters", nil, nil, nil)
	require.Equal(t, "unauthenticated", errCode(err), "%v", err)

	// 4. The operator's workstation: rapctl with its own config file.
	rcfg := filepath.Join(t.TempDir(), "rapctl.json")
	rapctl := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "rapctl"), args...)
		cmd.Env = append(os.Environ(), "RAPCTL_CONFIG="+rcfg, "RAPCTL_SERVERS=", "RAPCTL_TOKEN=", "RAPCTL_CA_PIN=")
		cmd.Stdin = strings.NewReader(stdin)
		var so, se strings.Builder
		cmd.Stdout, cmd.Stderr = &so, &se
		err := cmd.Run()
		require.NoError(t, err, "rapctl %v\nstdout: %s\nstderr: %s", args, so.String(), se.String())
		return so.String()
	}
	servers := auths[0].api + "," + auths[1].api
	rapctl("owner\n"+password+"\n"+codes.code(t)+"\n", "--server", servers, "--ca-pin", bootOut.CAPin, "login")

	// Third host: joins with a single-use authority join token.
	jt := rapctl("", "--totp", codes.code(t), "-o", "json", "authority", "join-token", "create", "--ttl", "15m")
	var jtOut struct {
		Token string `json:"token"`
	}
	require.NoError(t, json.Unmarshal([]byte(jt), &jtOut), jt)
	require.True(t, strings.HasPrefix(jtOut.Token, "rapmj."), jt)
	writeConfig(auths[2], map[string]string{"join": auths[0].api, "ca-pin": bootOut.CAPin}, "RAP_AUTHORITY_JOIN_TOKEN="+jtOut.Token)
	startService(auths[2])

	// A cluster and a join token (each one step-up).
	out = rapctl("", "--totp", codes.code(t), "cluster", "create", "east")
	require.Contains(t, out, "sha256:")
	var tok struct {
		Token string `json:"token"`
		CAPin string `json:"ca_pin"`
	}
	out = rapctl("", "--totp", codes.code(t), "-o", "json", "token", "create", "--cluster", "east", "--ttl", "30m")
	require.NoError(t, json.Unmarshal([]byte(out), &tok), out)
	require.True(t, strings.HasPrefix(tok.Token, "rapjt."), out)
	require.True(t, strings.HasPrefix(tok.CAPin, "sha256:"), out)
	testwait.Until(t, 40*time.Second, "three healthy members", members(3))
	allServers := strings.Join([]string{auths[0].api, auths[1].api, auths[2].api}, ",")
	out = rapctl("", "-o", "json", "authority", "status")
	for _, a := range auths {
		require.Contains(t, out, `"`+a.name+`"`)
	}

	// The KEK is configured on every authority: no warning about it.
	for _, a := range auths {
		require.Contains(t, a.svc.out.String(), "authority started", a.name)
		require.NotContains(t, a.svc.out.String(), "no key-encryption key configured", a.name)
	}

	// 5. A node agent on a fifth fresh host.
	agent := newHost(t, "edge-1")
	install(agent)
	enroll1 := agent.start("enroll", fmt.Sprintf(`exec rap-node-agent enroll --authority %s --token %s --ca-pin %s --state /var/lib/rap-node-agent/state.db --name edge-1 --capability can_route_mesh`,
		allServers, tok.Token, tok.CAPin))
	var reqID string
	testwait.Until(t, 30*time.Second, "a pending join request", func() bool {
		out := rapctl("", "-o", "json", "join-request", "list", "--cluster", "east", "--status", "pending")
		var l struct {
			Items []struct {
				ID string `json:"id"`
			} `json:"items"`
		}
		if json.Unmarshal([]byte(out), &l) != nil || len(l.Items) != 1 {
			return false
		}
		reqID = l.Items[0].ID
		return true
	})
	testwait.Until(t, 10*time.Second, "enroll says it waits for approval", func() bool {
		return strings.Contains(enroll1.out.String(), "waiting for approval")
	})
	rapctl("", "join-request", "show", reqID)
	out = rapctl("", "--totp", codes.code(t), "-o", "json", "join-request", "approve", reqID)
	var approved struct {
		NodeID string `json:"node_id"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &approved), out)
	select {
	case <-enroll1.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("enroll did not finish after approval:\n%s", enroll1.out.String())
	}
	require.True(t, enroll1.cmd.ProcessState.Success(), enroll1.out.String())
	svc := agent.start("rap-node-agent.service", agentUnit.script(t))
	// The unit's socket appears (status would fall back to the state file
	// without it, so this is what proves the default socket path).
	testwait.Until(t, 30*time.Second, "the agent's socket at /run/rap-node-agent/agent.sock", func() bool {
		require.False(t, svc.exited(), "the agent stopped:\n%s", svc.out.String())
		o, err := agent.command(`stat -c '%F %a %U' /run/rap-node-agent/agent.sock`).CombinedOutput()
		return err == nil && string(o) == "socket 600 root\n"
	})
	// `status` without flags: the default state file and socket.
	var st string
	testwait.Until(t, 30*time.Second, "rap-node-agent status answers from the running agent", func() bool {
		o, err := agent.command(`rap-node-agent status -o json`).CombinedOutput()
		st = string(o)
		return err == nil && strings.Contains(st, approved.NodeID) && strings.Contains(st, `"normal"`)
	})
	require.NotContains(t, st, "not running", st)
	require.NotContains(t, st, "locked", st)
	require.False(t, svc.exited(), svc.out.String())
	table := agent.sh(`rap-node-agent status`) // as in the README, the table
	require.Contains(t, table, approved.NodeID)
	// The authorities see its heartbeats.
	testwait.Until(t, 30*time.Second, "a heartbeat of edge-1", func() bool {
		var hb struct {
			Items []json.RawMessage `json:"items"`
		}
		out = rapctl("", "-o", "json", "node", "heartbeat", approved.NodeID)
		return json.Unmarshal([]byte(out), &hb) == nil && len(hb.Items) == 1
	})
}
