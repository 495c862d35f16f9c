// Package daemon is the composition root of rap-authority: it wires the store,
// the Raft node and FSM, the authority service and the HTTP API into one
// running process, and implements bootstrap and joining of authority members.
// It is the only package that imports both authority and httpapi. Only
// cmd/rap-authority and test harnesses (internal/authtest, tests) may import
// it; deps_test.go enforces both rules.
package daemon

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/authority/raftnode"
	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/httpapi"
	"github.com/rap-fabric/core/migrations"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/store"
)

// Config configures one authority process.
type Config struct {
	NodeID string
	// Version is this binary's version (stamped at build), reported by
	// GET /v1/authority/status; empty means "dev".
	Version       string
	DataDir       string
	DatabaseURL   string
	RaftBind      string
	RaftAdvertise string
	APIListen     string
	APIAdvertise  string
	// Hosts are extra DNS names / IPs for the API server certificate.
	Hosts []string
	// KEK is a 32-byte key-encryption key sealing CA private keys in the Raft
	// state; nil stores them unsealed (documented as not for production).
	KEK []byte
	// Raft timing; zero values take raftnode.DefaultConfig.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	QuorumTimeout      time.Duration
	Logger             hclog.Logger
	// StreamLayer replaces the Raft TCP transport (tests inject partitions).
	StreamLayer raft.StreamLayer

	// Admin, Heartbeats, Snapshots, VPN, Releases and Rollouts configure the
	// authority's subsystems
	// (authority.Config fields of the same names); zero values take the
	// defaults of authority.DefaultConfig. A new authority subsystem adds its
	// config here and to authority.Config.
	Admin      authority.AdminOptions
	Heartbeats authority.HeartbeatConfig
	Snapshots  authority.SnapshotOptions
	VPN        authority.VPNConfig
	Releases   authority.ReleasesConfig
	Rollouts   authority.RolloutsConfig
	// GroupCommit tunes the group commit of fenced writes
	// (authority.Config.GroupCommit).
	GroupCommit authority.GroupCommitOptions
	// Audit configures the audit chain's Raft checkpoints
	// (authority.Config.Audit).
	Audit authority.AuditConfig

	// MetricsListen is the loopback address of the Prometheus metrics
	// listener (plain HTTP, no credentials); "" runs none. A non-loopback
	// address is refused (observe.go).
	MetricsListen string
	// MetricsToken, when set, also opens /metrics on the API listener to
	// "Authorization: Bearer <token>"; otherwise /metrics is refused there.
	MetricsToken string
	// DebugListen is the loopback address of the pprof listener; "" runs none.
	DebugListen string
}

// Validate reports a missing required field or an invalid authority setting
// (a *authority.ConfigError naming the field) before anything is started.
func (c Config) Validate() error {
	if c.NodeID == "" || c.DataDir == "" || c.DatabaseURL == "" || c.RaftBind == "" || c.APIListen == "" {
		return errors.New("daemon: node id, data dir, database URL, raft bind and API listen addresses are required")
	}
	if err := c.validateObserve(); err != nil {
		return err
	}
	if len(c.KEK) != 0 && len(c.KEK) != 32 {
		return fmt.Errorf("daemon: KEK must be 32 bytes (got %d)", len(c.KEK))
	}
	return c.authorityConfig(nil, nil, c.QuorumTimeout).Validate()
}

// authorityConfig is the authority.Config this daemon builds its service from.
func (c Config) authorityConfig(log hclog.Logger, sealer fsm.Sealer, quorum time.Duration) authority.Config {
	return authority.Config{NodeID: c.NodeID, Logger: log, Sealer: sealer, QuorumTimeout: quorum,
		Admin: c.Admin, Heartbeats: c.Heartbeats, Snapshots: c.Snapshots, VPN: c.VPN,
		Releases: c.Releases, Rollouts: c.Rollouts,
		GroupCommit: c.GroupCommit,
		Audit:       c.Audit}
}

// Daemon is a running authority.
type Daemon struct {
	cfg    Config
	DB     *store.DB
	FSM    *fsm.FSM
	Raft   *raftnode.Node
	Auth   *authority.Authority
	VPN    *authority.VPN
	API    *httpapi.Server
	http   *http.Server
	ln     net.Listener
	log    hclog.Logger
	health *memberHealth
	member *memberTLS
	stop   chan struct{}
	// stopChain stops the audit chainer.
	stopChain context.CancelFunc
	wg        sync.WaitGroup

	// obs are the loopback metrics and pprof listeners (observe.go).
	obs observers
}

// Start validates cfg, migrates the database and starts Raft and the API. On
// an error it releases everything it started (one deferred cleanup).
func Start(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "rap-authority", Level: hclog.Info})
	}
	log := cfg.Logger.With("node_id", cfg.NodeID)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	if _, err := migrations.ApplyURL(ctx, cfg.DatabaseURL); err != nil {
		return nil, err
	}
	db, err := store.Open(ctx, cfg.DatabaseURL, store.Options{})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, db.Close)
	var sealer fsm.Sealer = fsm.NoopSealer{}
	if len(cfg.KEK) > 0 {
		s, err := fsm.NewAESGCMSealer(cfg.KEK, nil)
		if err != nil {
			return nil, err
		}
		sealer = s
	} else {
		log.Warn("no key-encryption key configured (--kek-file): cluster CA private keys are kept unsealed in the Raft log and snapshots, and TOTP secrets unsealed in PostgreSQL; configure the same KEK on every authority in production")
	}
	d := &Daemon{cfg: cfg, DB: db, FSM: fsm.New(fsm.Options{}), log: log, stop: make(chan struct{})}
	d.health = newMemberHealth()
	rc := raftnode.DefaultConfig()
	rc.NodeID = cfg.NodeID
	rc.BindAddr = cfg.RaftBind
	rc.AdvertiseAddr = cfg.RaftAdvertise
	rc.DataDir = filepath.Join(cfg.DataDir, "raft")
	rc.FSM = d.FSM
	rc.Logger = log.Named("raft")
	if cfg.HeartbeatTimeout > 0 {
		rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	}
	if cfg.ElectionTimeout > 0 {
		rc.ElectionTimeout = cfg.ElectionTimeout
	}
	if cfg.LeaderLeaseTimeout > 0 {
		rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	}
	if cfg.QuorumTimeout > 0 {
		rc.QuorumTimeout = cfg.QuorumTimeout
	}
	mt, err := loadMemberTLS(cfg.DataDir, d.FSM)
	if err != nil {
		return nil, err
	}
	d.member = mt
	inner := cfg.StreamLayer
	if inner == nil {
		tl, err := newTCPLayer(cfg.RaftBind, cfg.RaftAdvertise)
		if err != nil {
			return nil, fmt.Errorf("daemon: raft listen: %w", err)
		}
		inner = tl
	}
	rc.StreamLayer = &tlsLayer{inner: inner, m: mt}
	var auth *authority.Authority
	rc.OnLeader = func(epoch uint64) { auth.OnLeader(epoch) }
	rc.OnFollower = func() { auth.OnFollower() }
	rn, err := raftnode.New(rc)
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = rn.Shutdown() })
	d.Raft = rn
	if auth, err = authority.New(cfg.authorityConfig(log, sealer, rc.QuorumTimeout), consensus{rn}, d.FSM, db); err != nil {
		return nil, err
	}
	d.Auth = auth
	d.VPN = auth.VPN()
	d.API = httpapi.New(httpapi.Options{Authority: auth, Status: d, Members: d, Logger: log,
		Registry: newRegistry(auth), MetricsToken: cfg.MetricsToken})
	d.registerMetrics()
	if err := d.obs.start(cfg, d.API.MetricsHandler()); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, d.obs.close)

	ln, err := net.Listen("tcp", cfg.APIListen)
	if err != nil {
		return nil, fmt.Errorf("daemon: API listen: %w", err)
	}
	d.ln = ln
	if d.cfg.APIAdvertise == "" {
		d.cfg.APIAdvertise = ln.Addr().String()
	}
	tlsCfg := d.API.TLSConfig(cfg.Hosts)
	d.http = &http.Server{Handler: d.API.Handler(), TLSConfig: tlsCfg, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 120 * time.Second, ErrorLog: log.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.http.Serve(tls.NewListener(ln, tlsCfg)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("API server stopped", "error", err)
		}
	}()
	d.wg.Add(1)
	go d.healthLoop()
	chainCtx, stopChain := context.WithCancel(context.Background())
	d.stopChain = stopChain
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		auth.RunAuditChainer(chainCtx, 200*time.Millisecond)
	}()
	d.wg.Add(1)
	go func() { defer d.wg.Done(); auth.RunHeartbeats(d.stop) }() // heartbeat batcher, health sweeper, retention
	d.wg.Add(1)
	go func() { defer d.wg.Done(); auth.RunSnapshots(d.stop) }() // snapshot rebuild loop (leader) and long-poll wakeups
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.VPN.Run(d.stop) }() // stale VPN lease reclaimer (leader)
	d.wg.Add(1)
	go func() { defer d.wg.Done(); auth.Rollouts().Run(d.stop) }() // rollout reconcile loop (leader)
	log.Info("authority started", "raft", rn.Addr(), "api", d.cfg.APIAdvertise)
	return d, nil
}

// APIAddr returns the advertised API address.
func (d *Daemon) APIAddr() string { return d.cfg.APIAdvertise }

// RaftAddr returns the Raft transport address.
func (d *Daemon) RaftAddr() string { return d.Raft.Addr() }

// Bootstrap makes this authority the first member of a new group. It is a
// no-op when Raft state exists. It waits for leadership and records this member.
func (d *Daemon) Bootstrap(ctx context.Context) error {
	err := d.Raft.Bootstrap([]raftnode.Server{{ID: d.cfg.NodeID, Address: d.Raft.Addr(), Suffrage: fsm.SuffrageVoter}})
	if errors.Is(err, raftnode.ErrAlreadyBootstrapped) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := d.WaitLeaderWithFence(ctx); err != nil {
		return err
	}
	if _, err := d.Raft.Apply(ctx, "member|"+d.cfg.NodeID, fsm.UpsertMember{ID: d.cfg.NodeID, RaftAddr: d.Raft.Addr(), APIAddr: d.cfg.APIAdvertise, Suffrage: fsm.SuffrageVoter}); err != nil {
		return err
	}
	if err := d.ensurePlatformCA(ctx); err != nil {
		return err
	}
	cert, ca, err := d.Auth.IssueMemberCert(d.cfg.NodeID, d.member.PublicKey())
	if err != nil {
		return err
	}
	return d.member.install(cert, ca)
}

// MemberPublicKey is this authority's Raft transport key, sent when joining.
func (d *Daemon) MemberPublicKey() ed25519.PublicKey { return d.member.PublicKey() }

// InstallMemberCert stores the member certificate and platform CA a leader
// issued to this authority when it joined.
func (d *Daemon) InstallMemberCert(cert, ca []byte) error { return d.member.install(cert, ca) }

// HasMemberCert reports whether this authority may take part in Raft.
func (d *Daemon) HasMemberCert() bool { return d.member.has() }

// IsRestartedMember reports, from durable local state only, whether this
// authority already is a member of its group: it holds a member certificate
// and Raft state on disk (it was bootstrapped or replicated to). A restarted
// member rejoins through Raft alone and must not call the join routes (its
// join credential may be long invalid). The FSM's member list cannot decide
// this right after start: the log has not been replayed yet.
func (d *Daemon) IsRestartedMember() (bool, error) {
	if !d.member.has() {
		return false, nil
	}
	return d.Raft.HasExistingState()
}

// ensurePlatformCA creates the platform CA (which signs the owner API's server
// certificates) once.
func (d *Daemon) ensurePlatformCA(ctx context.Context) error {
	if _, ok := d.FSM.ClusterCA(httpapi.PlatformCA); ok {
		return nil
	}
	return d.Auth.CreatePlatformCA(ctx)
}

// WaitLeaderWithFence waits until this node leads and holds the fence.
func (d *Daemon) WaitLeaderWithFence(ctx context.Context) error {
	for {
		if d.Raft.IsLeader() && d.Auth.FenceEpoch() > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemon: waiting for leadership: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// PlatformPin returns the pin of the platform CA ("" before bootstrap).
func (d *Daemon) PlatformPin() string {
	ca, ok := d.FSM.ClusterCA(httpapi.PlatformCA)
	if !ok {
		return ""
	}
	p, _ := pki.PinDER(ca.Current.CertDER)
	return p
}

// IssueMemberCert issues a Raft member certificate for a joining authority's
// key (leader only, audited). The joiner installs it before it is added as a
// voter, so the configuration change can commit at once.
func (d *Daemon) IssueMemberCert(ctx context.Context, actor authority.Actor, id string, memberKey ed25519.PublicKey) ([]byte, []byte, error) {
	if len(memberKey) != ed25519.PublicKeySize {
		return nil, nil, authority.Errf(authority.CodeInvalid, "member_public_key must be a 32-byte Ed25519 key")
	}
	if id == "" {
		return nil, nil, authority.Errf(authority.CodeInvalid, "id is required")
	}
	if !d.Raft.IsLeader() {
		return nil, nil, authority.Errf(authority.CodeNotLeader, "member certificates are issued by the leader")
	}
	cert, ca, err := d.Auth.IssueMemberCert(id, memberKey)
	if err != nil {
		return nil, nil, err
	}
	if err := d.Auth.Audit(ctx, authority.Op{Action: "authority.member.certificate", Actor: actor, TargetKind: "authority", TargetID: id}, "ok"); err != nil {
		return nil, nil, err
	}
	return cert, ca, nil
}

// AddMember adds an authority as a voter and records it (fenced, audited). The
// authority must already hold a member certificate (IssueMemberCert).
func (d *Daemon) AddMember(ctx context.Context, actor authority.Actor, id, raftAddr, apiAddr string) error {
	_, err := authority.Fenced(ctx, d.Auth, authority.Op{Action: "authority.member.add", Actor: actor, TargetKind: "authority", TargetID: id,
		Details: map[string]any{"raft_addr": raftAddr, "api_addr": apiAddr}},
		func(tx pgx.Tx) (bool, error) {
			if err := d.Raft.AddVoter(ctx, id, raftAddr); err != nil {
				return false, mapRaftToAuthority(err)
			}
			if _, err := d.Raft.Apply(ctx, "", fsm.UpsertMember{ID: id, RaftAddr: raftAddr, APIAddr: apiAddr, Suffrage: fsm.SuffrageVoter}); err != nil {
				return false, mapRaftToAuthority(err)
			}
			return true, nil
		})
	return err
}

// RemoveMember removes an authority from the group (fenced, audited).
func (d *Daemon) RemoveMember(ctx context.Context, actor authority.Actor, id string) error {
	if _, ok := d.FSM.Member(id); !ok {
		return authority.Errf(authority.CodeNotFound, "no authority member %q", id)
	}
	_, err := authority.Fenced(ctx, d.Auth, authority.Op{Action: "authority.member.remove", Actor: actor, TargetKind: "authority", TargetID: id},
		func(tx pgx.Tx) (bool, error) {
			if err := d.Raft.RemoveServer(ctx, id); err != nil {
				return false, mapRaftToAuthority(err)
			}
			if _, err := d.Raft.Apply(ctx, "", fsm.RemoveMember{ID: id}); err != nil {
				return false, mapRaftToAuthority(err)
			}
			return true, nil
		})
	return err
}

func mapRaftToAuthority(err error) error {
	switch {
	case errors.Is(err, raftnode.ErrUnknownOutcome):
		return &authority.Error{Code: authority.CodeUnknownOutcome, Message: "membership change outcome unknown", Err: err}
	case errors.Is(err, raftnode.ErrNotLeader):
		return &authority.Error{Code: authority.CodeNotLeader, Message: "not the leader", Err: err}
	case errors.Is(err, raftnode.ErrNoQuorum):
		return &authority.Error{Code: authority.CodeNoQuorum, Message: "no quorum", Err: err}
	}
	return &authority.Error{Code: authority.CodeInvalid, Message: err.Error(), Err: err}
}

// Close stops the API, Raft and the database pool.
func (d *Daemon) Close() error {
	select {
	case <-d.stop:
		return nil
	default:
	}
	close(d.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.http.Shutdown(ctx)
	d.obs.close()
	d.stopChain()
	err := d.Raft.Shutdown()
	d.wg.Wait()
	d.DB.Close()
	return err
}

// Node returns this authority's node id.
func (d *Daemon) Node() string { return d.cfg.NodeID }
