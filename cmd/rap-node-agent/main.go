// Command rap-node-agent is the native host agent of the RAP Fabric Core.
//
//	rap-node-agent enroll --authority HOST:PORT[,…] --token TOKEN --ca-pin sha256:… [--state PATH] [--name NAME] [--capability CAP]…
//	rap-node-agent run    [--state PATH] [--interval 5s] [--status-socket PATH]
//	rap-node-agent status [--state PATH] [--status-socket PATH] [-o table|json]
//	rap-node-agent mesh ping NODE [--cluster ID] [--state PATH] [--status-socket PATH] [-o table|json]
//	rap-node-agent mesh links [--state PATH] [--status-socket PATH] [-o table|json]
//	rap-node-agent logs SERVICE [--follow] [--tail N] [--cluster ID] [--state PATH]
//	rap-node-agent version
//
// enroll joins one cluster (run it again with another token and pin for a
// second cluster; stop the running agent first, the state file is locked
// while it runs). run heartbeats every enrolled membership until SIGINT or
// SIGTERM. status asks the running agent over its unix socket (mode 0600) and
// falls back to reading the state file when no agent runs.
//
// run supervises the service workloads the verified snapshots assign (see
// agent/workload): their directories, records and output logs live under
// --workloads-dir (default: workloads/ next to the state file). logs prints
// (and with --follow keeps printing) a workload's output, by service id or
// type; it reads the files, so it works whether or not the agent runs.
//
// Every flag can also come from the environment: RAP_AGENT_ + the flag name in
// upper case with '-' as '_' (RAP_AGENT_STATE, RAP_AGENT_AUTHORITY,
// RAP_AGENT_CAPABILITY=a,b, RAP_AGENT_INTERVAL, …); the old names (RAP_STATE,
// RAP_AUTHORITIES, RAP_CAPABILITIES, …) still work with a warning. run also
// takes --config FILE, a JSON object of flag names; flags win over the
// environment, the environment over the file, and an unknown key or an
// invalid value is an error naming it (package flagconf).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rap-fabric/core/agent/runtime"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agent/statusclient"
	"github.com/rap-fabric/core/agent/updater"
	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/flagconf"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const defaultState = "/var/lib/rap-node-agent/state.db"

// defaultSocket is the status socket of an agent installed with the default
// state file: the path deploy/systemd/rap-node-agent.service creates
// (RuntimeDirectory=rap-node-agent) and passes to run.
const defaultSocket = "/run/rap-node-agent/agent.sock"

// socketFor is the status socket used when --status-socket is not given: the
// systemd path for the default state file, else agent.sock next to the
// state file. run and status agree on it, so status finds the agent that
// runs with the same --state.
func socketFor(statePath string) string {
	if filepath.Clean(statePath) == defaultState {
		return defaultSocket
	}
	return filepath.Join(filepath.Dir(statePath), "agent.sock")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "enroll":
		err = enroll(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	case "status":
		err = status(os.Args[2:])
	case "mesh":
		err = meshCmd(os.Args[2:])
	case "logs":
		err = logsCmd(os.Args[2:])
	case "state":
		err = stateCmd(os.Args[2:])
	case "version", "--version", "-v":
		fmt.Println(version)
		return
	case "help", "-h", "--help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rap-node-agent %s: %v\n", os.Args[1], err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  rap-node-agent enroll --authority HOST:PORT[,...] --token TOKEN --ca-pin sha256:... [--state PATH] [--name NAME] [--capability CAP]...
  rap-node-agent run    [--state PATH] [--interval 5s] [--status-socket PATH]
  rap-node-agent status [--state PATH] [--status-socket PATH] [-o table|json]
  rap-node-agent mesh ping NODE [--cluster ID] [--state PATH] [--status-socket PATH] [-o table|json]
  rap-node-agent mesh links [--state PATH] [--status-socket PATH] [-o table|json]
  rap-node-agent logs SERVICE [--follow] [--tail N] [--cluster ID] [--state PATH]
  rap-node-agent state migrate [--state PATH] [--to N] [--preflight CHECK]... [--apply] [-o table|json]
  rap-node-agent version
`)
}

// legacyEnv are the environment names used before RAP_AGENT_<FLAG>; they
// still work, with a deprecation warning.
var legacyEnv = map[string]string{
	"state": "RAP_STATE", "authority": "RAP_AUTHORITIES", "token": "RAP_TOKEN", "ca-pin": "RAP_CA_PIN",
	"capability": "RAP_CAPABILITIES", "log-level": "RAP_LOG_LEVEL", "storage-listen": "RAP_STORAGE_LISTEN",
	"mesh-listen": "RAP_MESH_LISTEN", "slots": "RAP_SLOTS", "workloads-dir": "RAP_WORKLOADS_DIR",
	"cgroup-parent": "RAP_CGROUP_PARENT", "podman": "RAP_PODMAN",
}

// loadFlags fills fs from args, the environment (RAP_AGENT_<FLAG>) and, when
// fs has --config, a JSON file of flag names (package flagconf): flags win
// over the environment, the environment over the file; unknown keys and
// invalid values are errors naming them.
func loadFlags(fs *flag.FlagSet, args []string) error {
	cfgFlag := ""
	if fs.Lookup("config") != nil {
		cfgFlag = "config"
	}
	// run (the service, reading agent.env) refuses a RAP_AGENT_ variable
	// that names no setting of any command: a typo is an error.
	return flagconf.Load(fs, args, flagconf.Options{EnvPrefix: "RAP_AGENT_", ConfigFlag: cfgFlag, Warn: warnWriter{},
		StrictEnv: fs.Name() == "run", AlsoKnown: otherCommandFlags,
		Legacy: func(name string) string { return legacyEnv[name] }})
}

// otherCommandFlags are the flags of enroll, status, mesh and logs, whose
// variables may share run's environment.
var otherCommandFlags = []string{"authority", "token", "ca-pin", "name", "machine-id-file", "poll-interval", "role",
	"o", "cluster", "timeout", "follow", "f", "tail", "workloads-dir", "state", "status-socket", "capability",
	"to", "apply", "backup", "preflight"}

// warnWriter prefixes loader warnings with the binary's name on stderr.
type warnWriter struct{}

func (warnWriter) Write(b []byte) (int, error) {
	fmt.Fprint(os.Stderr, "rap-node-agent: ")
	return os.Stderr.Write(b)
}

// listFlag is a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func capsOf(l listFlag) ([]domain.Capability, error) {
	var out []domain.Capability
	for _, s := range l {
		c := domain.Capability(s)
		if !c.Valid() {
			return nil, fmt.Errorf("unknown capability %q (known: %v)", s, domain.AllCapabilities)
		}
		out = append(out, c)
	}
	return out, nil
}

func openState(path string) (*state.Store, error) {
	st, err := state.Open(path, state.Options{})
	if errors.Is(err, state.ErrLocked) {
		return nil, fmt.Errorf("%w (is rap-node-agent run active? stop it first)", err)
	}
	return st, err
}

func enroll(args []string) error {
	fs := flag.NewFlagSet("enroll", flag.ContinueOnError)
	authorities := fs.String("authority", "", "authority API addresses HOST:PORT, comma-separated")
	token := fs.String("token", "", "join token (rapjt.…)")
	pin := fs.String("ca-pin", "", "cluster CA pin (sha256:…) printed with the token")
	statePath := fs.String("state", defaultState, "state file")
	name := fs.String("name", "", "node name (default: host name)")
	machineID := fs.String("machine-id-file", "/etc/machine-id", "file whose content identifies this host")
	poll := fs.Duration("poll-interval", 2*time.Second, "wait between polls for the outcome")
	var capList, roleList listFlag
	fs.Var(&capList, "capability", "configured capability (repeat or comma-separate)")
	fs.Var(&roleList, "role", "role to request (repeat or comma-separate)")
	if err := loadFlags(fs, args); err != nil {
		return err
	}
	caps, err := capsOf(capList)
	if err != nil {
		return err
	}
	var roles []domain.Role
	for _, r := range roleList {
		if !domain.Role(r).Valid() {
			return fmt.Errorf("unknown role %q", r)
		}
		roles = append(roles, domain.Role(r))
	}
	var addrs listFlag
	_ = addrs.Set(*authorities)
	st, err := openState(*statePath)
	if err != nil {
		return err
	}
	defer st.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := runtime.Enroll(ctx, st, runtime.EnrollOptions{Authorities: addrs, Token: *token, CAPin: *pin, Name: *name, Capabilities: caps, Roles: roles,
		MachineIDPath: *machineID, PollInterval: *poll, Progress: os.Stderr, AgentVersion: version})
	if err != nil {
		return err
	}
	fmt.Printf("enrolled: cluster %s node %s (certificate %s, valid until %s)\n", res.ClusterID, res.NodeID, res.Serial, res.NotAfter.Format(time.RFC3339))
	return nil
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.String("config", "", "JSON config file whose keys are flag names (RAP_AGENT_<FLAG> and flags win over it)")
	statePath := fs.String("state", defaultState, "state file")
	interval := fs.Duration("interval", 5*time.Second, "heartbeat interval (jittered ±10%)")
	desired := fs.Duration("desired-every", 0, "desired-state poll interval (default 3 heartbeat intervals)")
	degradedAfter := fs.Int("degraded-after", 2, "failed heartbeat rounds before degraded mode")
	timeout := fs.Duration("request-timeout", 3*time.Second, "timeout of one exchange with one authority")
	socket := fs.String("status-socket", "", "status unix socket (default: "+defaultSocket+" for the default --state, else agent.sock next to the state file)")
	level := fs.String("log-level", "info", "log level")
	var capList listFlag
	fs.Var(&capList, "capability", "configured capability (repeat or comma-separate)")
	snapWait := fs.Duration("snapshot-wait", 20*time.Second, "long-poll wait for a new snapshot (at most 25s)")
	noSnap := fs.Bool("no-snapshots", false, "do not fetch snapshots (and run no mesh)")
	storageListen := fs.String("storage-listen", "0.0.0.0:0", "TCP address of the config-storage endpoint (used only with the config-storage role)")
	storageAdv := fs.String("storage-advertise", "", "advertised config-storage address host:port (default: derived from the listen address)")
	meshListen := fs.String("mesh-listen", "0.0.0.0:0", "UDP address of the mesh socket (started when the snapshot carries peers)")
	noMesh := fs.Bool("no-mesh", false, "never start the mesh")
	slotsDir := fs.String("slots", "", "version slot directory of rap-node-agent-launcher: enables self-update")
	cacheListen := fs.String("update-cache-listen", "", "TCP address of the update-cache endpoint (served only with the update-cache role; empty: never)")
	cacheAdv := fs.String("update-cache-advertise", "", "advertised update-cache address host:port (default: derived from the listen address)")
	cacheDir := fs.String("update-cache-dir", "", "directory of mirrored artifacts (default: update-cache/ next to the state file)")
	meshReport := fs.Duration("mesh-report-every", 0, "link report period (default 3 heartbeat intervals)")
	noVPN := fs.Bool("no-vpn", false, "never hold VPN leases")
	vpnEvery := fs.Duration("vpn-every", 0, "VPN lease loop period (default 500ms)")
	vpnPoll := fs.Duration("vpn-poll-every", 0, "VPN assignments poll period (default 2s)")
	noTunnels := fs.Bool("no-vpn-tunnels", false, "hold VPN leases but run no tunnel (no TUN, routes or nftables)")
	tunnelNet := fs.String("vpn-tunnel-net", runtime.DefaultTunnelNet.String(), "IPv4 prefix tunnel interface addresses come from (a /30 per connection)")
	metricsListen := fs.String("metrics-listen", "", "loopback address of the Prometheus metrics listener (e.g. 127.0.0.1:9465); empty for none; non-loopback refused")
	debugListen := fs.String("debug-listen", "", "loopback address of a pprof listener (/debug/pprof/); empty for none; non-loopback refused")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	adminListen := fs.String("admin-listen", "", "TCP address of the Cluster Admin Endpoint (HTTPS; serves only while the node holds an approved admin-ingress role and every precondition holds); empty for none")
	adminCluster := fs.String("admin-cluster", "", "membership (cluster id) the admin endpoint serves (default: the only one)")
	adminCert := fs.String("admin-cert", "", "PEM certificate (chain) of the admin endpoint (default: the node identity certificate)")
	adminKey := fs.String("admin-key", "", "PEM private key of --admin-cert")
	adminEvery := fs.Duration("admin-check-every", 2*time.Second, "how often the admin endpoint's preconditions are checked")
	var meshAdv, noDirect listFlag
	fs.Var(&meshAdv, "mesh-advertise", "advertised mesh endpoint host:port (repeat; default: derived from --mesh-listen)")
	fs.Var(&noDirect, "mesh-no-direct", "node id never linked directly; traffic to it is relayed (drills and tests)")
	wl := workloadFlags(fs, statePath)
	if err := loadFlags(fs, args); err != nil {
		return err
	}
	caps, err := capsOf(capList)
	if err != nil {
		return err
	}
	tunNet, err := netip.ParsePrefix(*tunnelNet)
	if err != nil || !tunNet.Addr().Is4() || tunNet.Bits() > 30 {
		return fmt.Errorf("--vpn-tunnel-net %q: want an IPv4 prefix of /30 or wider", *tunnelNet)
	}
	if *socket == "" {
		*socket = socketFor(*statePath)
	}
	log, err := newLogger("rap-node-agent", *level, *logFormat)
	if err != nil {
		return err
	}
	// Outside systemd nobody made the runtime directory of the socket.
	if err := os.MkdirAll(filepath.Dir(*socket), 0o700); err != nil {
		return fmt.Errorf("status socket directory: %w", err)
	}
	st, err := openState(*statePath)
	if err != nil {
		return err
	}
	defer st.Close()
	if *slotsDir != "" {
		// A trial of a release whose signed manifest declares a node-local
		// state change migrates before anything else reads the file; a
		// failure ends the trial (the launcher restores the backup).
		if _, err := updater.MigrateDeclared(st, version, log); err != nil {
			return fmt.Errorf("declared state migration: %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The agent is built after the supervisor; state changes of workloads
	// ask it for an early heartbeat.
	var a *runtime.Agent
	sup, err := wl.supervisor(log, func(cluster string) {
		if a != nil {
			a.WorkloadsChanged(cluster)
		}
	})
	if err != nil {
		return err
	}
	var workloads runtime.Workloads
	if sup != nil {
		// On exit the agent stops supervising but leaves the workloads
		// running: the next agent re-adopts them.
		defer sup.Close()
		workloads = sup
	}
	a = runtime.NewAgent(st, runtime.RunOptions{Workloads: workloads, Interval: *interval, DesiredEvery: *desired, DegradedAfter: *degradedAfter, RequestTimeout: *timeout,
		StatusSocket: *socket, MetricsListen: *metricsListen, DebugListen: *debugListen, Capabilities: caps, AgentVersion: version, Logger: log,
		Snapshot: runtime.SnapshotOptions{Disabled: *noSnap, Wait: *snapWait, StorageListen: *storageListen, StorageAdvertise: *storageAdv},
		Mesh:     runtime.MeshOptions{Disabled: *noMesh, Listen: *meshListen, Advertise: meshAdv, NoDirect: noDirect, ReportEvery: *meshReport},
		VPN:      runtime.VPNOptions{Disabled: *noVPN, Every: *vpnEvery, PollEvery: *vpnPoll, NoTunnels: *noTunnels, TunnelNet: tunNet},
		Update:   runtime.UpdateOptions{SlotsDir: *slotsDir, CacheListen: *cacheListen, CacheAdvertise: *cacheAdv, CacheDir: *cacheDir},
		Admin:    runtime.AdminOptions{Listen: *adminListen, Cluster: *adminCluster, CertFile: *adminCert, KeyFile: *adminKey, Every: *adminEvery}})
	err = a.Run(ctx)
	if errors.Is(err, runtime.ErrSwitchRequested) {
		st.Close()
		log.Info("exiting for the launcher to start the staged version", "exit_status", updater.ExitSwitch)
		os.Exit(updater.ExitSwitch)
	}
	return err
}

func status(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	statePath := fs.String("state", defaultState, "state file")
	socket := fs.String("status-socket", "", "status unix socket (default: "+defaultSocket+" for the default --state, else agent.sock next to the state file)")
	out := fs.String("o", "table", "output: table or json")
	if err := loadFlags(fs, args); err != nil {
		return err
	}
	if *socket == "" {
		*socket = socketFor(*statePath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := runtime.ReadStatus(ctx, *socket)
	for try := 0; errors.Is(err, runtime.ErrAgentNotRunning); try++ {
		// No agent answers: read the state file, unless an agent holds it
		// (it is starting and its socket is not up yet): then ask again.
		if _, serr := os.Stat(*statePath); serr != nil {
			return fmt.Errorf("%w; no state file: %w", err, serr)
		}
		st, oerr := state.Open(*statePath, state.Options{LockTimeout: 200 * time.Millisecond})
		if errors.Is(oerr, state.ErrLocked) && try < 10 {
			time.Sleep(300 * time.Millisecond)
			r, err = runtime.ReadStatus(ctx, *socket)
			continue
		}
		if errors.Is(oerr, state.ErrLocked) {
			// An agent holds the state file, so it runs: its socket is
			// elsewhere (or it is stuck). One message, not two.
			return fmt.Errorf("an agent is running (it holds %s) but does not answer on %s: pass the --status-socket it runs with", *statePath, *socket)
		}
		if oerr != nil {
			return fmt.Errorf("%w; reading the state file: %w", err, oerr)
		}
		r, err = runtime.StatusFromState(st)
		st.Close()
	}
	if err != nil {
		return err
	}
	if *out == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return runtime.WriteStatusTable(os.Stdout, r)
}

func meshCmd(args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: mesh ping NODE | mesh links", flag.ErrHelp)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("mesh "+sub, flag.ContinueOnError)
	statePath := fs.String("state", defaultState, "state file")
	socket := fs.String("status-socket", "", "status unix socket (default: "+defaultSocket+" for the default --state, else agent.sock next to the state file)")
	out := fs.String("o", "table", "output: table or json")
	cluster := fs.String("cluster", "", "cluster id (needed when several memberships run a mesh)")
	timeout := fs.Duration("timeout", 5*time.Second, "ping timeout")
	var node string
	if sub == "ping" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		node, args = args[0], args[1:]
	}
	if err := loadFlags(fs, args); err != nil {
		return err
	}
	if sub == "ping" && node == "" && fs.NArg() > 0 {
		node = fs.Arg(0)
	}
	if *socket == "" {
		*socket = socketFor(*statePath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout+5*time.Second)
	defer cancel()
	var v any
	switch sub {
	case "ping":
		if node == "" {
			return fmt.Errorf("%w: mesh ping NODE", flag.ErrHelp)
		}
		return statusclient.Ping(*socket, *cluster, node, *timeout, *out == "json", os.Stdout)
	case "links":
		ms, err := runtime.MeshStatusVia(ctx, *socket)
		if err != nil {
			return err
		}
		if *out != "json" {
			runtime.WriteMeshTable(os.Stdout, ms)
			return nil
		}
		v = ms
	default:
		return fmt.Errorf("%w: unknown mesh subcommand %q", flag.ErrHelp, sub)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
