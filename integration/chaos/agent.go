package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rap-fabric/core/agentapi"
)

// Agent is a rap-node-agent on its own host.
type Agent struct {
	Name  string
	Host  *Host
	Dir   string
	State string
	Proc  *Process
	// Caps are configured capabilities passed to enroll and run.
	Caps []string
	// RunArgs are extra `rap-node-agent run` flags.
	RunArgs []string

	env *Env
}

// AgentMembership is the part of `rap-node-agent status -o json` the drills read.
type AgentMembership struct {
	ClusterID         string     `json:"cluster_id"`
	NodeID            string     `json:"node_id"`
	MembershipStatus  string     `json:"membership_status"`
	CertificateSerial string     `json:"certificate_serial"`
	Mode              string     `json:"mode"`
	ModeReason        string     `json:"mode_reason"`
	Running           bool       `json:"running"`
	LastHeartbeatAck  time.Time  `json:"last_heartbeat_ack"`
	HeartbeatsAcked   uint64     `json:"heartbeats_acked"`
	ConsecutiveErrors int        `json:"consecutive_errors"`
	AppliedVersion    uint64     `json:"applied_version"`
	Roles             []string   `json:"roles"`
	VPN               []AgentVPN `json:"vpn"`
}

// AgentVPN is one VPN assignment as the running agent reports it.
type AgentVPN struct {
	ConnectionID string `json:"connection_id"`
	Name         string `json:"name"`
	State        string `json:"state"`
	Generation   int64  `json:"generation"`
	Reported     string `json:"reported"`
	Acquired     int    `json:"acquired"`
	Lost         int    `json:"lost"`
	LastEvent    string `json:"last_event"`
	Role         string `json:"role"`
	ExitNodeID   string `json:"exit_node_id"`
	// Tunnel is the data path (interface, counters, drops, current exit).
	Tunnel *agentapi.VPNTunnelStatus `json:"tunnel"`
}

// AgentStatus is `rap-node-agent status -o json`.
type AgentStatus struct {
	Source      string            `json:"source"`
	Memberships []AgentMembership `json:"memberships"`
}

// AddAgent creates a host for an agent (198.18.0.21 for the first, …).
func (e *Env) AddAgent(name string, octet byte) *Agent {
	h := e.mustHost(name, octet)
	dir := filepath.Join(e.Net.LogDir, name+"-data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		e.T.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "machine-id"), []byte(fmt.Sprintf("%032x\n", e.Rand.Uint64())), 0o600); err != nil {
		e.T.Fatal(err)
	}
	return &Agent{Name: name, Host: h, Dir: dir, State: filepath.Join(dir, "state.db"), env: e}
}

// APIAddrs is the comma-separated list of every authority's API address.
func (e *Env) APIAddrs() string {
	var s []string
	for _, a := range e.Auths {
		s = append(s, a.APIAddr)
	}
	return strings.Join(s, ",")
}

// CreateClusterAndToken creates a cluster and an auto-approving join token
// for it (max uses n) and returns the token and the cluster CA pin.
func (e *Env) CreateClusterAndToken(slug string, n int) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.API.Do(ctx, http.MethodPost, "/v1/clusters", map[string]any{"name": "Agents " + slug, "slug": slug}, nil,
		map[string]string{"Idempotency-Key": "setup-" + slug}); err != nil {
		return "", "", fmt.Errorf("create cluster: %w", err)
	}
	var tok struct {
		Token string `json:"token"`
		CAPin string `json:"ca_pin"`
	}
	if _, err := e.API.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": slug, "ttl_seconds": 3600, "max_uses": n, "auto_approve": true, "allowed_roles": []string{"relay-node"}},
		&tok, map[string]string{"Idempotency-Key": "setup-token-" + slug}); err != nil {
		return "", "", fmt.Errorf("create join token: %w", err)
	}
	return tok.Token, tok.CAPin, nil
}

// Enroll runs `rap-node-agent enroll` on the agent's host and returns how long
// it took.
func (a *Agent) Enroll(token, pin string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	args := []string{"enroll", "--authority", a.env.APIAddrs(), "--token", token,
		"--ca-pin", pin, "--state", a.State, "--name", a.Name, "--machine-id-file", filepath.Join(a.Dir, "machine-id"), "--poll-interval", "500ms"}
	if len(a.Caps) > 0 {
		args = append(args, "--capability", strings.Join(a.Caps, ","))
	}
	out, err := a.Host.Exec(timeout, filepath.Join(a.env.Bin, "rap-node-agent"), args...)
	took := time.Since(start)
	_ = os.WriteFile(filepath.Join(a.env.Net.LogDir, a.Name+"-enroll.log"), out, 0o600)
	if err != nil {
		return took, fmt.Errorf("enroll %s: %w\n%s", a.Name, err, out)
	}
	return took, nil
}

// Run starts `rap-node-agent run` with a 1 s heartbeat interval, degraded
// after 2 failed rounds.
func (a *Agent) Run() error {
	args := []string{"run", "--state", a.State, "--interval", "1s",
		"--degraded-after", "2", "--request-timeout", "1s", "--status-socket", filepath.Join(a.Dir, "agent.sock")}
	if len(a.Caps) > 0 {
		args = append(args, "--capability", strings.Join(a.Caps, ","))
	}
	p, err := a.Host.Start(a.Name, filepath.Join(a.env.Bin, "rap-node-agent"), append(args, a.RunArgs...)...)
	a.Proc = p
	return err
}

// Status runs `rap-node-agent status -o json` (over the agent's unix socket).
func (a *Agent) Status() (AgentMembership, error) {
	cmd := exec.Command(filepath.Join(a.env.Bin, "rap-node-agent"), "status", "--state", a.State, "--status-socket", filepath.Join(a.Dir, "agent.sock"), "-o", "json")
	out, err := cmd.Output()
	if err != nil {
		return AgentMembership{}, fmt.Errorf("agent status: %w: %s", err, out)
	}
	var st AgentStatus
	if err := json.Unmarshal(out, &st); err != nil {
		return AgentMembership{}, fmt.Errorf("agent status: %w: %s", err, out)
	}
	if len(st.Memberships) != 1 {
		return AgentMembership{}, fmt.Errorf("agent status: %d memberships", len(st.Memberships))
	}
	return st.Memberships[0], nil
}

// WaitAgent polls the agent's status until cond holds.
func (a *Agent) WaitAgent(timeout time.Duration, what string, cond func(AgentMembership) bool) (AgentMembership, time.Duration, error) {
	start := time.Now()
	var last AgentMembership
	var lastErr error
	for time.Since(start) < timeout {
		st, err := a.Status()
		if err == nil && cond(st) {
			return st, time.Since(start), nil
		}
		last, lastErr = st, err
		time.Sleep(200 * time.Millisecond)
	}
	return last, 0, fmt.Errorf("%w: agent %s not %s within %v (last %+v, %v)", ErrTimeout, a.Name, what, timeout, last, lastErr)
}

// Staller holds TCP connections open on a listener with a TLS handshake that
// never completes (a record header announcing a ClientHello that never
// comes), reopening them when the server gives up on them.
type Staller struct {
	from    *Host
	targets []string
	per     int

	open, opened atomic.Int64
	stop         chan struct{}
	wg           sync.WaitGroup
}

// StallHandshakes starts per stalled connections to each target.
func StallHandshakes(from *Host, targets []string, per int) *Staller {
	s := &Staller{from: from, targets: targets, per: per, stop: make(chan struct{})}
	for _, t := range targets {
		for i := 0; i < per; i++ {
			s.wg.Add(1)
			go s.hold(t)
		}
	}
	return s
}

func (s *Staller) hold(target string) {
	defer s.wg.Done()
	partial := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00} // handshake record of 512 bytes, ClientHello… then nothing
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c, err := s.from.DialContext(ctx, "tcp", target)
		cancel()
		if err != nil {
			select {
			case <-s.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		s.opened.Add(1)
		s.open.Add(1)
		_, _ = c.Write(partial)
		done := make(chan struct{})
		go func() {
			var b [1]byte
			_, _ = c.Read(b[:]) // returns when the server closes it
			close(done)
		}()
		select {
		case <-s.stop:
		case <-done:
		}
		_ = c.Close()
		s.open.Add(-1)
	}
}

// Open is the number of stalled connections open now; Opened counts all.
func (s *Staller) Open() int64 { return s.open.Load() }

// Opened counts every stalled connection made.
func (s *Staller) Opened() int64 { return s.opened.Load() }

// Stop closes every stalled connection.
func (s *Staller) Stop() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.wg.Wait()
}
