package bench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/daemon"
)

// Environment of an authority child (this test binary re-executed).
const envAuthorityChild = "FLEET_AUTHORITY" // path of the authoritySpec JSON

// authoritySpec is what an authority child needs to start (production Raft
// timing and transport, mutual TLS over TCP).
type authoritySpec struct {
	NodeID      string `json:"node_id"`
	DataDir     string `json:"data_dir"`
	DatabaseURL string `json:"database_url"`
}

// authorityHello is the child's first line: what the leader needs to admit
// it.
type authorityHello struct {
	Node      string `json:"node"`
	MemberKey []byte `json:"member_key"`
	Raft      string `json:"raft"`
	API       string `json:"api"`
}

// memberCert is the leader's answer to a hello.
type memberCert struct {
	Cert []byte `json:"cert"`
	CA   []byte `json:"ca"`
}

// procStats are one process's resource figures.
type procStats struct {
	CPU     time.Duration `json:"cpu"`
	RSSKB   float64       `json:"rss_kb"`
	HWMKB   float64       `json:"hwm_kb"`
	FDs     int           `json:"fds"`
	FDLimit string        `json:"fd_limit"`
}

// flushedReport is the heartbeats an authority committed that were sent in a
// window, with each one's send → committed time.
type flushedReport struct {
	Committed int             `json:"committed"`
	Visible   []time.Duration `json:"visible"`
}

// statsOf reads a process's figures from its held-open /proc files; cpu is
// only known for this process (other processes report their own).
func statsOf(p *procFiles, cpu time.Duration) procStats {
	n, limit := p.openFDs()
	return procStats{CPU: cpu, RSSKB: p.field("VmRSS"), HWMKB: p.field("VmHWM"), FDs: n, FDLimit: limit}
}

// flushLog records the heartbeats an authority committed, by send time.
type flushLog struct {
	mu      sync.Mutex
	sent    []time.Time
	visible []time.Duration
}

func (f *flushLog) record(h *authority.Heartbeats) {
	h.OnFlush(func(s, _ []time.Time, committed time.Time) {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, x := range s {
			f.sent = append(f.sent, x)
			f.visible = append(f.visible, committed.Sub(x))
		}
	})
}

// window reports the heartbeats sent in [start, end].
func (f *flushLog) window(start, end time.Time) flushedReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	var r flushedReport
	for i, s := range f.sent {
		if !s.Before(start) && !s.After(end) {
			r.Committed++
			r.Visible = append(r.Visible, f.visible[i])
		}
	}
	return r
}

// authorityChild is one authority in its own process, so that its memory,
// CPU and open files are its own (the fleet's aims are per authority).
// Protocol on stdin/stdout: it starts and prints an authorityHello; "cert
// <memberCert JSON>" installs the member certificate the leader issued
// ("ok"); "record" starts recording committed heartbeats ("ok"); "flushed
// <start ns> <end ns>" answers a flushedReport; "stats" a procStats;
// "profile <path>" starts a CPU profile into path and "profile-stop" ends it
// ("ok"); stdin closing stops the authority.
func authorityChild() error {
	data, err := os.ReadFile(os.Getenv(envAuthorityChild))
	if err != nil {
		return err
	}
	var s authoritySpec
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	self := openProc("self")
	defer self.close()
	d, err := daemon.Start(context.Background(), daemon.Config{NodeID: s.NodeID, DataDir: s.DataDir, DatabaseURL: s.DatabaseURL,
		RaftBind: "127.0.0.1:0", APIListen: "127.0.0.1:0",
		Logger: hclog.New(&hclog.LoggerOptions{Name: s.NodeID, Level: hclog.Warn, Output: os.Stderr})})
	if err != nil {
		return err
	}
	defer d.Close()
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(authorityHello{Node: d.Node(), MemberKey: d.MemberPublicKey(), Raft: d.RaftAddr(), API: d.APIAddr()}); err != nil {
		return err
	}
	var flushes flushLog
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "cert":
			var c memberCert
			if err := json.Unmarshal([]byte(arg), &c); err != nil {
				return err
			}
			if err := d.InstallMemberCert(c.Cert, c.CA); err != nil {
				return err
			}
			fmt.Println("ok")
		case "record":
			flushes.record(d.Auth.Heartbeats())
			fmt.Println("ok")
		case "flushed":
			var a, b int64
			if _, err := fmt.Sscan(arg, &a, &b); err != nil {
				return err
			}
			if err := out.Encode(flushes.window(time.Unix(0, a), time.Unix(0, b))); err != nil {
				return err
			}
		case "stats":
			if err := out.Encode(statsOf(self, cpuTime())); err != nil {
				return err
			}
		case "profile":
			if err := startProfile(arg); err != nil {
				return err
			}
			fmt.Println("ok")
		case "profile-stop":
			pprof.StopCPUProfile()
			fmt.Println("ok")
		case "edit":
			// The fleet's policy edit, when this authority leads.
			if err := fleetEdit(d, arg); err != nil {
				fmt.Println("err", strings.ReplaceAll(err.Error(), "\n", " "))
			} else {
				fmt.Println("ok")
			}
		default:
			return fmt.Errorf("authority child: unknown command %q", in.Text())
		}
	}
	return in.Err()
}

// fleetEdit is the fleet's one cluster-wide change (a route intent), made
// on d if it leads with the fence held; its idempotency key makes retries on
// any authority one edit.
func fleetEdit(d *daemon.Daemon, cluster string) error {
	if !d.Raft.IsLeader() || d.Auth.FenceEpoch() == 0 {
		return fmt.Errorf("%s is not a fenced leader", d.Node())
	}
	_, err := d.Auth.CreateRouteIntent(context.Background(), authority.Actor{ID: "bench", Kind: "system"}, cluster, authority.RouteIntentRequest{
		Name: "fleet-edit", Source: "*", Destination: "*", Action: "prefer-relay"}, "bench-fleet-edit")
	return err
}

// startProfile starts this process's CPU profile into path.
func startProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return err
	}
	return nil
}

// childProc is the parent's handle on a child process speaking a line
// protocol on its stdin and stdout.
type childProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Scanner
	files  *procFiles // its /proc files, opened at start
	api    string     // an authority child's API address
}

// startChild re-executes this test binary with env=<spec as a JSON file>.
func startChild(b *testing.B, env string, spec any) *childProc {
	data, err := json.Marshal(spec)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "spec.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^$")
	// FLEET_NICE=n runs the simulated agents at nice n: in a deployment
	// they are other machines, here they share the authorities' cores, and
	// at 50,000 they take enough of them to starve the Raft group.
	if n := envInt("FLEET_NICE", 0); n > 0 && env == envFleetChild {
		cmd = exec.Command("nice", "-n", strconv.Itoa(n), os.Args[0], "-test.run", "^$")
	}
	cmd.Env = append(os.Environ(), env+"="+path)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	p := &childProc{cmd: cmd, stdin: stdin, stdout: sc, files: openProc(fmt.Sprint(cmd.Process.Pid))}
	b.Cleanup(func() { _ = p.stdin.Close(); _ = p.cmd.Wait(); p.files.close() })
	return p
}

// line sends cmd (when not "") and returns the child's next output line.
func (p *childProc) line(cmd string) (string, error) {
	if cmd != "" {
		if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
			return "", err
		}
	}
	if !p.stdout.Scan() {
		return "", fmt.Errorf("child ended (%v)", p.stdout.Err())
	}
	return p.stdout.Text(), nil
}

// call sends cmd and decodes the child's JSON answer into out.
func (p *childProc) call(cmd string, out any) error {
	l, err := p.line(cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(l), out); err != nil {
		return fmt.Errorf("child answered %q to %q: %w", l, cmd, err)
	}
	return nil
}

// expectOK sends cmd and wants "ok".
func (p *childProc) expectOK(cmd string) error {
	l, err := p.line(cmd)
	if err == nil && l != "ok" {
		err = fmt.Errorf("child answered %q to %q", l, strings.Fields(cmd)[0])
	}
	return err
}

// startAuthorityChildren starts n authorities in their own processes and
// admits them to the group of leader (member certificate, then AddMember).
func startAuthorityChildren(b *testing.B, leader *daemon.Daemon, dbURL string, n int) []*childProc {
	ctx := context.Background()
	sys := authority.Actor{ID: "bench", Kind: "system"}
	var procs []*childProc
	for i := range n {
		p := startChild(b, envAuthorityChild, authoritySpec{NodeID: fmt.Sprintf("a%d", i+2), DataDir: b.TempDir(), DatabaseURL: dbURL})
		var h authorityHello
		if err := p.call("", &h); err != nil {
			b.Fatal(err)
		}
		cert, ca, err := leader.IssueMemberCert(ctx, sys, h.Node, ed25519.PublicKey(h.MemberKey))
		if err != nil {
			b.Fatal(err)
		}
		line, _ := json.Marshal(memberCert{Cert: cert, CA: ca})
		if err := p.expectOK("cert " + string(line)); err != nil {
			b.Fatal(err)
		}
		if err := leader.AddMember(ctx, sys, h.Node, h.Raft, h.API); err != nil {
			b.Fatal(err)
		}
		p.api = h.API
		procs = append(procs, p)
	}
	return procs
}
