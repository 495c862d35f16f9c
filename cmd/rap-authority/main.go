// Command rap-authority runs one member of the authority Raft group: the fenced
// control plane, snapshot signer and JSON API of the RAP Fabric Core.
//
//	rap-authority run        [flags]   run an authority (first start: --bootstrap or --join)
//	rap-authority bootstrap  [flags]   run --bootstrap: start a new group, print the owner token
//	rap-authority migrate    --database-url URL
//	rap-authority audit verify --database-url URL (--server ADDR --token T --ca-pin P | --checkpoint SEQ:HASH | --no-checkpoint)
//	rap-authority recover    --config FILE | --id ID --data-dir DIR [--dry-run]
//	rap-authority version
//
// Every flag can also come from the environment (RAP_AUTHORITY_ + upper-case
// flag name with '-' as '_', e.g. RAP_AUTHORITY_DATABASE_URL; the old RAP_
// names still work with a warning) or, for run, from a JSON file given with
// --config whose keys are the flag names. Flags win over the environment, the
// environment over the file; an unknown key or an invalid value is an error
// naming it (package flagconf).
package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/flagconf"
	"github.com/rap-fabric/core/migrations"
	"github.com/rap-fabric/core/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:], false)
	case "bootstrap":
		err = run(os.Args[2:], true)
	case "migrate":
		err = migrate(os.Args[2:])
	case "audit":
		if len(os.Args) < 3 || os.Args[2] != "verify" {
			usage()
			os.Exit(2)
		}
		err = auditVerify(os.Args[3:])
	case "bootstrap-owner":
		err = bootstrapOwner(os.Args[2:])
	case "member-key":
		err = memberKey(os.Args[2:])
	case "recover":
		err = recoverCmd(os.Args[2:])
	case "version", "--version", "-v":
		fmt.Println(version)
	case "-h", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "rap-authority: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rap-authority:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage: rap-authority <command> [flags]

commands:
  run          run an authority (first start of a group: --bootstrap; further members: --join)
  bootstrap    same as run --bootstrap
  migrate      apply the database migrations and exit
  audit verify verify the audit hash chain against the latest Raft checkpoint and name the first bad event
  bootstrap-owner create the first platform owner; print a one-time setup secret
  member-key   print this authority's Raft member public key (for rapctl authority add)
  recover      lost quorum: make this stopped authority the only voter, keeping its log (--dry-run first)
  version      print the version

rap-authority run --help lists every flag of run (addresses, data dir, database,
Raft timing, heartbeat thresholds and retention).
`)
}

type runFlags struct {
	fs                                                  *flag.FlagSet
	id, dataDir, dbURL, raftBind, raftAdv, apiListen    *string
	apiAdv, hosts, kekFile, join, joinToken, caPin, cfg *string
	bootstrap                                           *bool
	heartbeat, election, lease, quorum                  *time.Duration
	logLevel                                            *string
	// Heartbeat ingest (authority.HeartbeatConfig).
	hbLate, hbStale, hbOffline, hbRetention, hbFlush *time.Duration
	hbMaxBatch, hbFlushers                           *int
	// VPN control plane (authority.VPNConfig).
	vpnReclaim, vpnLeaseTTL *time.Duration
	// Version storage and rollouts (authority.ReleasesConfig, RolloutsConfig).
	releaseChunk    *int
	rolloutInterval *time.Duration
	// Observability (observe.go): log format, metrics and pprof listeners.
	obs observeFlags
	// Audit checkpoints (authority.AuditConfig).
	auditCPEvery    *int
	auditCPInterval *time.Duration
}

// flagOfField names the flag that sets an authority.Config field, so that an
// invalid value is reported by the flag the operator typed.
var flagOfField = map[string]string{
	"QuorumTimeout":            "quorum-timeout",
	"Heartbeats.LateAfter":     "heartbeat-late-after",
	"Heartbeats.StaleAfter":    "heartbeat-stale-after",
	"Heartbeats.OfflineAfter":  "heartbeat-offline-after",
	"Heartbeats.Retention":     "heartbeat-retention",
	"Heartbeats.FlushInterval": "heartbeat-flush-interval",
	"Heartbeats.MaxBatch":      "heartbeat-max-batch",
	"Heartbeats.Flushers":      "heartbeat-flushers",
	"VPN.ReclaimInterval":      "vpn-reclaim-interval",
	"VPN.DefaultLeaseTTL":      "vpn-default-lease-ttl",
	"Releases.MaxChunk":        "release-max-chunk",
	"Rollouts.Interval":        "rollout-interval",
	"MetricsListen":            "metrics-listen",
	"DebugListen":              "debug-listen",
	"Audit.CheckpointEvery":    "audit-checkpoint-every",
	"Audit.CheckpointInterval": "audit-checkpoint-interval",
}

func newRunFlags(name string) *runFlags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	r := &runFlags{fs: fs}
	r.cfg = fs.String("config", "", "JSON config file whose keys are flag names")
	r.id = fs.String("id", "", "authority node id (unique in the group)")
	r.dataDir = fs.String("data-dir", "", "directory for Raft state (log, snapshots)")
	r.dbURL = fs.String("database-url", "", "PostgreSQL URL (the source of truth); several hosts with target_session_attrs=read-write follow a failover to a promoted standby (docs/postgres-ha.md)")
	r.raftBind = fs.String("raft-bind", "127.0.0.1:7000", "Raft TCP listen address")
	r.raftAdv = fs.String("raft-advertise", "", "Raft address peers dial (default: raft-bind)")
	r.apiListen = fs.String("api-listen", "127.0.0.1:8443", "HTTPS API listen address")
	r.apiAdv = fs.String("api-advertise", "", "API address clients are sent to (default: api-listen)")
	r.hosts = fs.String("hosts", "", "extra comma-separated DNS names/IPs for the API certificate")
	r.kekFile = fs.String("kek-file", "", "file with a 64-hex-character key-encryption key sealing CA keys")
	r.bootstrap = fs.Bool("bootstrap", false, "start a new authority group with this node as its first member")
	r.join = fs.String("join", "", "API address of an existing authority to join through")
	r.joinToken = fs.String("join-token", "", "authority join token (rapctl authority join-token create), or an owner API token before owners have MFA (or RAP_AUTHORITY_JOIN_TOKEN)")
	r.caPin = fs.String("ca-pin", "", "platform CA pin of the group to join (sha256:…)")
	r.heartbeat = fs.Duration("heartbeat-timeout", time.Second, "Raft heartbeat timeout")
	r.election = fs.Duration("election-timeout", time.Second, "Raft election timeout")
	r.lease = fs.Duration("leader-lease-timeout", 500*time.Millisecond, "Raft leader lease timeout")
	r.quorum = fs.Duration("quorum-timeout", 1500*time.Millisecond, "how long a fenced request waits for a quorum")
	r.logLevel = fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	hb := authority.DefaultConfig().Heartbeats
	r.hbLate = fs.Duration("heartbeat-late-after", hb.LateAfter, "derived health: a node whose last heartbeat is older is late")
	r.hbStale = fs.Duration("heartbeat-stale-after", hb.StaleAfter, "derived health: older than this is stale (must exceed --heartbeat-late-after)")
	r.hbOffline = fs.Duration("heartbeat-offline-after", hb.OfflineAfter, "derived health: older than this is offline (must exceed --heartbeat-stale-after)")
	r.hbRetention = fs.Duration("heartbeat-retention", hb.Retention, "how long the heartbeat append log keeps rows")
	r.hbFlush = fs.Duration("heartbeat-flush-interval", hb.FlushInterval, "longest a heartbeat waits in memory before it is written")
	r.hbMaxBatch = fs.Int("heartbeat-max-batch", hb.MaxBatch, "heartbeat rows that trigger an early flush")
	r.hbFlushers = fs.Int("heartbeat-flushers", hb.Flushers, fmt.Sprintf("concurrent heartbeat flushers, each writing its own share of the nodes on its own connection (1..%d)", authority.MaxHeartbeatFlushers))
	r.vpnReclaim = fs.Duration("vpn-reclaim-interval", time.Second, "how often the leader ends expired VPN leases")
	r.vpnLeaseTTL = fs.Duration("vpn-default-lease-ttl", 30*time.Second, "VPN lease term of a connection created without one (2s..1h)")
	r.releaseChunk = fs.Int("release-max-chunk", authority.DefaultReleaseChunkSize, "largest artifact upload chunk accepted, in bytes (at most 1 MiB)")
	r.rolloutInterval = fs.Duration("rollout-interval", 2*time.Second, "how often the leader re-evaluates running rollouts")
	r.obs = newObserveFlags(fs)
	r.auditCPEvery = fs.Int("audit-checkpoint-every", 1000, "the leader commits an audit checkpoint through Raft after this many audit events")
	r.auditCPInterval = fs.Duration("audit-checkpoint-interval", time.Minute, "the leader commits an audit checkpoint when the chain moved and the last one is older than this")
	return r
}

// parse applies, in decreasing priority: flags, environment
// (RAP_AUTHORITY_<FLAG>; the old RAP_<FLAG> with a warning), config file
// (--config); unknown keys and invalid values are errors naming them.
func (r *runFlags) parse(args []string) error {
	// run refuses a RAP_AUTHORITY_ variable that names no setting (a typo
	// in authority.env); the other commands' flag names are allowed.
	if err := flagconf.Load(r.fs, args, flagconf.Options{EnvPrefix: "RAP_AUTHORITY_", ConfigFlag: "config", Warn: warnWriter{},
		StrictEnv: true, AlsoKnown: []string{"name", "demo-password", "console-url"},
		Legacy: func(name string) string { return flagconf.EnvName("RAP_", name) }}); err != nil {
		return err
	}
	if *r.dbURL == "" {
		*r.dbURL = os.Getenv("DATABASE_URL")
	}
	return nil
}

// loadFlags fills fs from args, the environment and (when fs has --config)
// the config file, with flagconf.
func loadFlags(fs *flag.FlagSet, args []string) error {
	cfgFlag := ""
	if fs.Lookup("config") != nil {
		cfgFlag = "config"
	}
	return flagconf.Load(fs, args, flagconf.Options{EnvPrefix: "RAP_AUTHORITY_", ConfigFlag: cfgFlag, Warn: warnWriter{},
		Legacy: func(name string) string { return flagconf.EnvName("RAP_", name) }})
}

// warnWriter prefixes loader warnings with the binary's name on stderr.
type warnWriter struct{}

func (warnWriter) Write(b []byte) (int, error) {
	fmt.Fprint(os.Stderr, "rap-authority: ")
	return os.Stderr.Write(b)
}

func run(args []string, bootstrap bool) error {
	r := newRunFlags("run")
	if err := r.parse(args); err != nil {
		return err
	}
	if bootstrap {
		*r.bootstrap = true
	}
	if *r.id == "" || *r.dataDir == "" || *r.dbURL == "" {
		return errors.New("--id, --data-dir and --database-url are required")
	}
	var kek []byte
	if *r.kekFile != "" {
		data, err := os.ReadFile(*r.kekFile)
		if err != nil {
			return err
		}
		if kek, err = hex.DecodeString(strings.TrimSpace(string(data))); err != nil || len(kek) != 32 {
			return errors.New("--kek-file must hold 64 hex characters (32 bytes)")
		}
	}
	logger, err := r.obs.logger("rap-authority", *r.logLevel)
	if err != nil {
		return err
	}
	metricsToken, err := r.obs.metricsToken()
	if err != nil {
		return err
	}
	var hosts []string
	if *r.hosts != "" {
		hosts = strings.Split(*r.hosts, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := daemon.Config{NodeID: *r.id, Version: version, DataDir: *r.dataDir, DatabaseURL: *r.dbURL, RaftBind: *r.raftBind, RaftAdvertise: *r.raftAdv,
		APIListen: *r.apiListen, APIAdvertise: *r.apiAdv, Hosts: hosts, KEK: kek, Logger: logger,
		HeartbeatTimeout: *r.heartbeat, ElectionTimeout: *r.election, LeaderLeaseTimeout: *r.lease, QuorumTimeout: *r.quorum,
		Heartbeats: authority.HeartbeatConfig{LateAfter: *r.hbLate, StaleAfter: *r.hbStale, OfflineAfter: *r.hbOffline,
			Retention: *r.hbRetention, FlushInterval: *r.hbFlush, MaxBatch: *r.hbMaxBatch, Flushers: *r.hbFlushers},
		VPN:      authority.VPNConfig{ReclaimInterval: *r.vpnReclaim, DefaultLeaseTTL: *r.vpnLeaseTTL},
		Releases: authority.ReleasesConfig{MaxChunk: *r.releaseChunk},
		Rollouts: authority.RolloutsConfig{Interval: *r.rolloutInterval},
		Audit:    authority.AuditConfig{CheckpointEvery: *r.auditCPEvery, CheckpointInterval: *r.auditCPInterval}}
	cfg.MetricsListen, cfg.MetricsToken, cfg.DebugListen = *r.obs.metricsListen, metricsToken, *r.obs.debugListen
	if err := flagError(cfg.Validate()); err != nil {
		return err
	}
	d, err := daemon.Start(ctx, cfg)
	if err != nil {
		return flagError(err)
	}
	defer d.Close()
	if a := d.MetricsAddr(); a != "" {
		logger.Info("metrics listener", "url", "http://"+a+"/metrics")
	}
	if a := d.DebugAddr(); a != "" {
		logger.Info("pprof listener", "url", "http://"+a+"/debug/pprof/")
	}
	if *r.bootstrap {
		bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := d.Bootstrap(bctx)
		cancel()
		if err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
		if err := printBootstrap(ctx, d); err != nil {
			return err
		}
	}
	if *r.join != "" {
		if err := joinGroup(ctx, d, logger.Named("join"), *r.join, firstNonEmpty(*r.joinToken, os.Getenv("RAP_JOIN_TOKEN")), *r.caPin); err != nil {
			return fmt.Errorf("join: %w", err)
		}
	}
	<-ctx.Done()
	logger.Info("shutting down")
	return nil
}

// flagError names the flag behind an invalid authority setting.
func flagError(err error) error {
	var ce *authority.ConfigError
	if errors.As(err, &ce) {
		if name, ok := flagOfField[ce.Field]; ok {
			return fmt.Errorf("--%s: %s", name, ce.Reason)
		}
	}
	return err
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// printBootstrap creates the first owner API token when none exists and prints
// it once, with the platform CA pin, as one JSON line on stdout.
func printBootstrap(ctx context.Context, d *daemon.Daemon) error {
	var n int
	if err := d.DB.Pool.QueryRow(ctx, `SELECT count(*) FROM owner_api_tokens`).Scan(&n); err != nil {
		return err
	}
	out := map[string]string{"node_id": d.Node(), "api_addr": d.APIAddr(), "ca_pin": d.PlatformPin()}
	if n == 0 {
		tok, err := d.Auth.CreateOwnerToken(ctx, authority.Actor{ID: "bootstrap", Kind: "system"}, "bootstrap owner", "platform_owner")
		if err != nil {
			return err
		}
		out["owner_token"] = tok
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// joinGroup asks an existing member (following not_leader) to add this node:
// a member certificate for this node's key first, then the voter. It retries
// what may pass (no quorum, a leader change, an unreachable member) for about
// 30 s, logging each retry and its reason, and gives up at once when the
// credential is refused. A retry after a join whose answer was lost finds
// this node among the members and succeeds.
func joinGroup(ctx context.Context, d *daemon.Daemon, log hclog.Logger, addr, token, pin string) error {
	member, err := d.IsRestartedMember()
	if err != nil {
		return err
	}
	if member {
		return nil // a restart: Raft brings this member back; the join token may be long invalid
	}
	if token == "" || pin == "" {
		return errors.New("--join needs --join-token and --ca-pin")
	}
	c, err := apiclient.New(apiclient.Options{Servers: []string{addr}, Token: token, CAPin: pin})
	if err != nil {
		return err
	}
	defer c.Close()
	const attempts = 30
	var lastErr error
	for i := 1; i <= attempts; i++ {
		step := "member certificate"
		if !d.HasMemberCert() {
			var mc struct {
				MemberCertificate []byte `json:"member_certificate"`
				PlatformCA        []byte `json:"platform_ca"`
			}
			lastErr = c.Do(ctx, http.MethodPost, "/v1/authority/members/certificate", map[string]any{"id": d.Node(), "member_public_key": []byte(d.MemberPublicKey())}, &mc, nil)
			if lastErr == nil {
				lastErr = d.InstallMemberCert(mc.MemberCertificate, mc.PlatformCA)
			}
		}
		if lastErr == nil {
			step = "add voter"
			lastErr = c.Do(ctx, http.MethodPost, "/v1/authority/members", map[string]any{"id": d.Node(), "raft_addr": d.RaftAddr(), "api_addr": d.APIAddr()}, nil, nil)
			if lastErr == nil {
				log.Info("joined the authority group", "via", addr)
				return nil
			}
		}
		if joined(ctx, c, d.Node()) {
			log.Info("already a member of the authority group", "via", addr)
			return nil
		}
		var ae *apiclient.Error
		if errors.As(lastErr, &ae) && joinRefused[ae.Code] {
			log.Error("join refused; not retrying", "step", step, "code", ae.Code, "reason", ae.Message)
			return lastErr
		}
		if i == attempts {
			break
		}
		log.Warn("join failed; retrying in 1s", "attempt", i, "of", attempts, "step", step, "reason", lastErr)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return lastErr
}

// joinRefused are the answers a retry cannot change: the credential or the
// request itself was refused.
var joinRefused = map[string]bool{
	"unauthenticated": true, "token_invalid": true, "forbidden": true, "step_up_required": true,
	"invalid_argument": true, "rate_limited": true,
}

// joined reports whether the group already lists id as a member (a join
// whose answer was lost).
func joined(ctx context.Context, c *apiclient.Client, id string) bool {
	var st struct {
		Members []struct {
			ID string `json:"id"`
		} `json:"members"`
	}
	if c.Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil) != nil {
		return false
	}
	for _, m := range st.Members {
		if m.ID == id {
			return true
		}
	}
	return false
}

func dbFlag(args []string) (string, error) {
	fs := flag.NewFlagSet("db", flag.ContinueOnError)
	u := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	if err := loadFlags(fs, args); err != nil {
		return "", err
	}
	if *u == "" {
		return "", errors.New("--database-url is required")
	}
	return *u, nil
}

func migrate(args []string) error {
	u, err := dbFlag(args)
	if err != nil {
		return err
	}
	v, err := migrations.ApplyURL(context.Background(), u)
	if err != nil {
		return err
	}
	fmt.Printf("schema at version %d\n", v)
	return nil
}

// auditVerify checks the audit chain in PostgreSQL against an anchor kept
// outside it: the latest Raft checkpoint, read from a running authority
// (--server, --token, --ca-pin or RAPCTL_SERVERS, RAPCTL_TOKEN, RAPCTL_CA_PIN), or one
// given with --checkpoint. --no-checkpoint checks the links only (truncation
// of the newest rows is then undetectable). Exit status 3: the chain is broken.
func auditVerify(args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	u := fs.String("database-url", os.Getenv("DATABASE_URL"), "PostgreSQL URL")
	servers := fs.String("server", os.Getenv("RAPCTL_SERVERS"), "comma-separated authority API addresses to read the latest Raft checkpoint from (or RAPCTL_SERVERS)")
	token := fs.String("token", os.Getenv("RAPCTL_TOKEN"), "owner API token (or RAPCTL_TOKEN)")
	pin := fs.String("ca-pin", os.Getenv("RAPCTL_CA_PIN"), "platform CA pin sha256:… (or RAPCTL_CA_PIN)")
	cpFlag := fs.String("checkpoint", "", "a checkpoint recorded elsewhere: SEQ:HASH or SEQ:HASH:MAX_ID:V2_FROM (as rapctl audit checkpoint prints)")
	none := fs.Bool("no-checkpoint", false, "check the links only, without an anchor (cannot detect deleted newest rows)")
	if err := loadFlags(fs, args); err != nil {
		return err
	}
	if *u == "" {
		return errors.New("--database-url is required")
	}
	ctx := context.Background()
	var anchor *authority.AuditAnchor
	switch {
	case *cpFlag != "":
		a, err := parseCheckpoint(*cpFlag)
		if err != nil {
			return err
		}
		anchor = &a
	case *servers != "":
		a, err := newestCheckpoint(ctx, strings.Split(*servers, ","), *token, *pin)
		var ae *apiclient.Error
		switch {
		case errors.As(err, &ae) && ae.Code == string(authority.CodeNotFound):
			fmt.Println("no audit checkpoint committed yet: checking links only")
		case err != nil:
			return fmt.Errorf("reading the latest audit checkpoint: %w", err)
		default:
			anchor = &a
		}
	case !*none:
		return errors.New("give --server (read the latest Raft checkpoint), --checkpoint SEQ:HASH, or --no-checkpoint")
	}
	db, err := store.Open(ctx, *u, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	a, err := authority.New(authority.Config{}, nil, nil, db)
	if err != nil {
		return err
	}
	res, err := a.VerifyAudit(ctx, anchor)
	if err != nil {
		return err
	}
	if !authority.WriteAuditVerifyReport(os.Stdout, anchor, res) {
		os.Exit(3)
	}
	return nil
}

// newestCheckpoint reads the audit checkpoint from every server and returns
// the one with the highest Raft index: a follower answers from what it has
// applied, which may lag a checkpoint (or re-anchor) just committed. It fails
// only when no server answered with a checkpoint: not_found when one said it
// has none, else the first error.
func newestCheckpoint(ctx context.Context, servers []string, token, pin string) (authority.AuditAnchor, error) {
	var best authority.AuditAnchor
	var firstErr, notFound error
	found := false
	for _, srv := range servers {
		c, err := apiclient.New(apiclient.Options{Servers: []string{srv}, Token: token, CAPin: pin, Timeout: 15 * time.Second, MaxRedirects: -1})
		if err != nil {
			return best, err
		}
		var a authority.AuditAnchor
		err = c.Do(ctx, http.MethodGet, "/v1/audit/checkpoint", nil, &a, nil)
		c.Close()
		switch {
		case err != nil:
			var ae *apiclient.Error
			if errors.As(err, &ae) && ae.Code == string(authority.CodeNotFound) {
				notFound = err
			} else if firstErr == nil {
				firstErr = err
			}
		case !found || a.Index > best.Index:
			best, found = a, true
		}
	}
	switch {
	case found:
		return best, nil
	case notFound != nil:
		return best, notFound
	}
	return best, firstErr
}

// parseCheckpoint parses SEQ:HASH[:MAX_ID[:V2_FROM]].
func parseCheckpoint(s string) (authority.AuditAnchor, error) {
	var a authority.AuditAnchor
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 4 {
		return a, errors.New("--checkpoint must be SEQ:HASH[:MAX_ID[:V2_FROM]]")
	}
	var err error
	if a.Seq, err = strconv.ParseInt(parts[0], 10, 64); err != nil || a.Seq < 0 {
		return a, errors.New("--checkpoint: SEQ must be a non-negative integer")
	}
	if err := a.Hash.UnmarshalText([]byte(parts[1])); err != nil {
		return a, fmt.Errorf("--checkpoint: %w", err)
	}
	if len(parts) > 2 {
		if a.MaxID, err = strconv.ParseInt(parts[2], 10, 64); err != nil || a.MaxID < 0 {
			return a, errors.New("--checkpoint: MAX_ID must be a non-negative integer")
		}
	}
	if len(parts) > 3 {
		if a.V2From, err = strconv.ParseInt(parts[3], 10, 64); err != nil || a.V2From < 1 {
			return a, errors.New("--checkpoint: V2_FROM must be a positive integer")
		}
	}
	return a, nil
}

func memberKey(args []string) error {
	fs := flag.NewFlagSet("member-key", flag.ContinueOnError)
	dir := fs.String("data-dir", "", "the authority's data directory")
	if err := loadFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--data-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	k, err := daemon.MemberKey(*dir)
	if err != nil {
		return err
	}
	fmt.Println(base64.StdEncoding.EncodeToString(k))
	return nil
}
