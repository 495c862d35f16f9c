package gossip

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/rap-fabric/core/internal/testwait"
)

// testDir is a mutable in-memory Directory.
type testDir struct {
	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	revoked map[string]bool
}

func newTestDir() *testDir {
	return &testDir{keys: map[string]ed25519.PublicKey{}, revoked: map[string]bool{}}
}

func (d *testDir) Lookup(id string) (ed25519.PublicKey, []byte, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	k, ok := d.keys[id]
	return k, nil, ok
}

func (d *testDir) Revoked(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revoked[id]
}

func (d *testDir) add(id string, pub ed25519.PublicKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.keys[id] = pub
}

func (d *testDir) revoke(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.revoked[id] = true
}

var gossipKey = bytes.Repeat([]byte{0x42}, GossipKeyLen)

func key(seed string) ed25519.PrivateKey {
	var s [32]byte
	copy(s[:], seed)
	return ed25519.NewKeyFromSeed(s[:])
}

// fastConfig shrinks memberlist's timers so failures are detected in well
// under a second on loopback.
func fastConfig() *memberlist.Config {
	c := memberlist.DefaultLocalConfig()
	// Tolerant enough that a loaded 2-core machine running -race does not
	// produce false suspicions, fast enough to see a killed member in ~1 s.
	c.ProbeInterval = 150 * time.Millisecond
	c.ProbeTimeout = 150 * time.Millisecond
	c.SuspicionMult = 3
	c.SuspicionMaxTimeoutMult = 2
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 300 * time.Millisecond
	c.TCPTimeout = 500 * time.Millisecond
	c.GossipToTheDeadTime = 2 * time.Second
	c.DeadNodeReclaimTime = time.Second
	return c
}

func meshEP(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), uint16(51820+i))
}

// startNode creates an honest node registered in dir.
func startNode(t *testing.T, dir *testDir, id string, i int) *Gossip {
	t.Helper()
	k := key(id)
	dir.add(id, k.Public().(ed25519.PublicKey))
	g, err := New(Config{
		NodeID: id, ClusterID: "c1", IdentityKey: k, GossipKey: gossipKey, Directory: dir,
		Endpoints: []netip.AddrPort{meshEP(i)}, Region: fmt.Sprintf("r%d", i%2), Load: 0.1 * float64(i),
		BindAddr: "127.0.0.1", BindPort: 0, Base: fastConfig(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown() })
	return g
}

func startCluster(t *testing.T, dir *testDir, n int) []*Gossip {
	t.Helper()
	var gs []*Gossip
	for i := range n {
		gs = append(gs, startNode(t, dir, fmt.Sprintf("n%d", i), i))
	}
	for i := 1; i < n; i++ {
		// Several seeds (the snapshot's list), including a dead one.
		seeds := []string{"127.0.0.1:1"}
		for j := range min(i, 3) {
			seeds = append(seeds, gs[j].Addr())
		}
		if got, err := gs[i].Join(seeds); err != nil || got < 1 {
			t.Fatalf("join %d: %d %v", i, got, err)
		}
	}
	return gs
}

func ids(cs []Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.NodeID
	}
	return out
}

func others(all []string, self string) []string {
	var out []string
	for _, s := range all {
		if s != self {
			out = append(out, s)
		}
	}
	return out
}

func waitCandidates(t *testing.T, gs []*Gossip, want func(self string) []string, needRTT bool) {
	t.Helper()
	testwait.For(t, 10*time.Second, "candidates", func() (bool, string) {
		for _, g := range gs {
			cs := g.Candidates()
			if w := want(g.cfg.NodeID); !slices.Equal(ids(cs), w) {
				return false, fmt.Sprintf("%s has %v want %v", g.cfg.NodeID, ids(cs), w)
			}
			if needRTT {
				for _, c := range cs {
					if c.RTT <= 0 {
						return false, fmt.Sprintf("%s has no RTT for %s", g.cfg.NodeID, c.NodeID)
					}
				}
			}
		}
		return true, ""
	})
}

func TestFiveNodesConverge(t *testing.T) {
	dir := newTestDir()
	gs := startCluster(t, dir, 5)
	all := []string{"n0", "n1", "n2", "n3", "n4"}
	waitCandidates(t, gs, func(s string) []string { return others(all, s) }, true)
	for _, g := range gs {
		for _, c := range g.Candidates() {
			var i int
			fmt.Sscanf(c.NodeID, "n%d", &i)
			if len(c.Endpoints) != 1 || c.Endpoints[0] != meshEP(i) {
				t.Errorf("%s: %s endpoints %v", g.cfg.NodeID, c.NodeID, c.Endpoints)
			}
			if c.Region != fmt.Sprintf("r%d", i%2) || c.Load < 0.1*float64(i)-1e-3 || c.Load > 0.1*float64(i)+1e-3 {
				t.Errorf("%s: %s region %q load %v", g.cfg.NodeID, c.NodeID, c.Region, c.Load)
			}
		}
		if g.Stats().Rejected != 0 {
			t.Errorf("%s rejected honest records: %+v", g.cfg.NodeID, g.Stats())
		}
	}

	// A record update (new endpoint, load) propagates and signals Changes.
	drain(gs[0].Changes())
	newEP := netip.MustParseAddrPort("192.0.2.7:4000")
	if err := gs[3].Update([]netip.AddrPort{newEP}, 0.9, time.Second); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "update", func() (bool, string) {
		for _, c := range gs[0].Candidates() {
			if c.NodeID == "n3" {
				return len(c.Endpoints) == 1 && c.Endpoints[0] == newEP && c.Load > 0.89, fmt.Sprint(c)
			}
		}
		return false, "n3 missing"
	})
	select {
	case <-gs[0].Changes():
	default:
		t.Error("no change signalled for n3's update")
	}
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// rawDelegate serves a fixed meta, for forged members.
type rawDelegate struct{ meta []byte }

func (d *rawDelegate) NodeMeta(limit int) []byte                                  { return d.meta }
func (d *rawDelegate) NotifyMsg([]byte)                                           {}
func (d *rawDelegate) GetBroadcasts(int, int) [][]byte                            { return nil }
func (d *rawDelegate) LocalState(bool) []byte                                     { return nil }
func (d *rawDelegate) MergeRemoteState([]byte, bool)                              {}
func (d *rawDelegate) NotifyAlive(*memberlist.Node) error                         { return nil }
func (d *rawDelegate) NotifyJoin(*memberlist.Node)                                {}
func (d *rawDelegate) NotifyLeave(*memberlist.Node)                               {}
func (d *rawDelegate) NotifyUpdate(*memberlist.Node)                              {}
func (d *rawDelegate) AckPayload() []byte                                         { return nil }
func (d *rawDelegate) NotifyPingComplete(*memberlist.Node, time.Duration, []byte) {}

// startRaw starts a member that holds the gossip key (an insider) but
// serves arbitrary meta.
func startRaw(t *testing.T, name string, meta []byte, seeds []string) {
	t.Helper()
	c := fastConfig()
	c.Name, c.BindAddr, c.BindPort = name, "127.0.0.1", 0
	c.SecretKey, c.Label = gossipKey, "rap-fabric/c1"
	d := &rawDelegate{meta: meta}
	c.Delegate, c.Alive = d, d
	c.LogOutput = discard{}
	ml, err := memberlist.Create(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ml.Shutdown() })
	if _, err := ml.Join(seeds); err != nil {
		t.Fatal(err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func TestForgedRecordsIgnored(t *testing.T) {
	dir := newTestDir()
	gs := startCluster(t, dir, 3)
	honest := []string{"n0", "n1", "n2"}
	waitCandidates(t, gs, func(s string) []string { return others(honest, s) }, false)
	seeds := []string{gs[0].Addr(), gs[1].Addr()}
	attacker := key("attacker")

	// n9 is in the directory, but its record is signed by another key.
	dir.add("n9", key("n9").Public().(ed25519.PublicKey))
	forged, err := EncodeRecord(Record{ClusterID: "c1", NodeID: "n9", Endpoints: []netip.AddrPort{meshEP(9)}, Incarnation: 1}, attacker)
	if err != nil {
		t.Fatal(err)
	}
	// "evil" is not in the directory at all.
	unknown, _ := EncodeRecord(Record{ClusterID: "c1", NodeID: "evil", Incarnation: 1}, attacker)
	// "thief" replays n1's genuine, validly signed record.
	genuine := gs[1].delegateMeta()
	// "alien" is a valid directory node with a correctly signed record for
	// another cluster.
	dir.add("alien", key("alien").Public().(ed25519.PublicKey))
	other, _ := EncodeRecord(Record{ClusterID: "c2", NodeID: "alien", Incarnation: 1}, key("alien"))

	cases := map[string]error{"n9": ErrBadSignature, "evil": ErrUnknownNode, "thief": ErrNameMismatch, "alien": ErrOtherCluster}
	startRaw(t, "n9", forged, seeds)
	startRaw(t, "evil", unknown, seeds)
	startRaw(t, "thief", genuine, seeds)
	startRaw(t, "alien", other, seeds)

	// The seeds are contacted directly and must refuse every forged record
	// with its reason. n2 hears of them only if an attacker happens to
	// gossip with it (the seeds never pass a refused member on), so it must
	// have refused whatever it heard, with the right reason.
	testwait.For(t, 20*time.Second, "rejections", func() (bool, string) {
		for i, g := range gs {
			for name, want := range cases {
				err := g.LastRejection(name)
				if err == nil && i >= len(seeds) {
					continue
				}
				if !errors.Is(err, want) {
					return false, fmt.Sprintf("%s: %s: %v, want %v", g.cfg.NodeID, name, err, want)
				}
			}
		}
		return true, ""
	})
	// D6: nothing changed what the honest nodes propose. (Polled: under
	// heavy load memberlist may briefly suspect an honest member.)
	for _, g := range gs {
		for _, m := range g.ml.Members() {
			if _, bad := cases[m.Name]; bad {
				t.Errorf("%s: memberlist tracks forged member %s", g.cfg.NodeID, m.Name)
			}
		}
	}
	waitCandidates(t, gs, func(s string) []string { return others(honest, s) }, false)
}

func (g *Gossip) delegateMeta() []byte { return (&delegate{g: g}).NodeMeta(memberlist.MetaMaxSize) }

func TestGarbageMetaDoesNotCrash(t *testing.T) {
	dir := newTestDir()
	gs := startCluster(t, dir, 2)
	waitCandidates(t, gs, func(s string) []string { return others([]string{"n0", "n1"}, s) }, false)
	seeds := []string{gs[0].Addr()}
	r := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, memberlist.MetaMaxSize)
	for i := range junk {
		junk[i] = byte(r.Uint32())
	}
	lying := append([]byte{recordMagic, recordVersion, 255, 255}, bytes.Repeat([]byte{0xff}, 200)...)
	metas := map[string][]byte{"junk": junk, "lying": lying, "empty": nil, "full": bytes.Repeat([]byte{'R'}, memberlist.MetaMaxSize)}
	for name, m := range metas {
		startRaw(t, name, m, seeds)
	}
	testwait.For(t, 10*time.Second, "rejections", func() (bool, string) {
		for name := range metas {
			if err := gs[0].LastRejection(name); !errors.Is(err, ErrMalformed) {
				return false, fmt.Sprintf("%s: %v", name, err)
			}
		}
		return true, ""
	})
	waitCandidates(t, gs, func(s string) []string { return others([]string{"n0", "n1"}, s) }, false)
}

func TestRevokedNodeDropped(t *testing.T) {
	dir := newTestDir()
	gs := startCluster(t, dir, 4)
	all := []string{"n0", "n1", "n2", "n3"}
	waitCandidates(t, gs, func(s string) []string { return others(all, s) }, false)
	for _, g := range gs {
		drain(g.Changes())
	}
	dir.revoke("n3")
	live := []string{"n0", "n1", "n2"}
	// Effective at once on read, before any gossip round.
	for _, g := range gs[:3] {
		if got := ids(g.Candidates()); !slices.Equal(got, others(live, g.cfg.NodeID)) {
			t.Errorf("%s still proposes %v", g.cfg.NodeID, got)
		}
		if n := g.Reverify(); n != 1 {
			t.Errorf("%s Reverify dropped %d", g.cfg.NodeID, n)
		}
		select {
		case <-g.Changes():
		default:
			t.Errorf("%s: no change signalled", g.cfg.NodeID)
		}
	}
	// Its fresh records are refused from now on.
	if err := gs[3].Update([]netip.AddrPort{meshEP(33)}, 0.5, time.Second); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 5*time.Second, "revoked rejection", func() (bool, string) {
		for _, g := range gs[:3] {
			if err := g.LastRejection("n3"); !errors.Is(err, ErrRevoked) {
				return false, fmt.Sprintf("%s: %v", g.cfg.NodeID, err)
			}
		}
		return true, ""
	})
	for _, g := range gs[:3] {
		if got := ids(g.Candidates()); slices.Contains(got, "n3") {
			t.Errorf("%s: n3 back in %v", g.cfg.NodeID, got)
		}
	}
}

func TestDeadAndLeftMembersDropped(t *testing.T) {
	dir := newTestDir()
	gs := startCluster(t, dir, 4)
	all := []string{"n0", "n1", "n2", "n3"}
	waitCandidates(t, gs, func(s string) []string { return others(all, s) }, false)

	// n3 is killed (no leave message): probes must find it dead.
	if err := gs[3].Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitCandidates(t, gs[:3], func(s string) []string { return others([]string{"n0", "n1", "n2"}, s) }, false)

	// n2 leaves cleanly.
	if err := gs[2].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := gs[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitCandidates(t, gs[:2], func(s string) []string { return others([]string{"n0", "n1"}, s) }, false)
	if gs[0].Stats().Left < 2 {
		t.Errorf("left counter %+v", gs[0].Stats())
	}
}

func TestStaleAndSelfRecords(t *testing.T) {
	dir := newTestDir()
	g := startNode(t, dir, "n0", 0)
	k1 := key("n1")
	dir.add("n1", k1.Public().(ed25519.PublicKey))
	d := &delegate{g: g}
	node := func(inc uint64) *memberlist.Node {
		m, err := EncodeRecord(Record{ClusterID: "c1", NodeID: "n1", Endpoints: []netip.AddrPort{meshEP(1)}, Incarnation: inc}, k1)
		if err != nil {
			t.Fatal(err)
		}
		return &memberlist.Node{Name: "n1", Addr: []byte{127, 0, 0, 1}, Port: 1, Meta: m}
	}
	d.NotifyJoin(node(100))
	if got := g.Candidates(); len(got) != 1 || got[0].Incarnation != 100 {
		t.Fatalf("candidates %+v", got)
	}
	if err := d.NotifyAlive(node(50)); !errors.Is(err, ErrStale) {
		t.Errorf("older incarnation: %v", err)
	}
	d.NotifyUpdate(node(50))
	if got := g.Candidates(); len(got) != 1 || got[0].Incarnation != 100 {
		t.Errorf("stale update applied: %+v", got)
	}
	if err := d.NotifyAlive(node(100)); err != nil {
		t.Errorf("same incarnation refused: %v", err)
	}
	d.NotifyUpdate(node(200))
	if got := g.Candidates(); len(got) != 1 || got[0].Incarnation != 200 {
		t.Errorf("newer update not applied: %+v", got)
	}
	// RTTs are kept for verified members only.
	d.NotifyPingComplete(&memberlist.Node{Name: "n1"}, 10*time.Millisecond, nil)
	d.NotifyPingComplete(&memberlist.Node{Name: "ghost"}, 10*time.Millisecond, nil)
	if got := g.Candidates(); got[0].RTT != 10*time.Millisecond {
		t.Errorf("rtt %v", got[0].RTT)
	}
	// A forged alive under our own name is refused.
	forged, _ := EncodeRecord(Record{ClusterID: "c1", NodeID: "n0", Incarnation: 1 << 62}, k1)
	if err := d.NotifyAlive(&memberlist.Node{Name: "n0", Meta: forged}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged self: %v", err)
	}
	d.NotifyLeave(&memberlist.Node{Name: "n1"})
	if got := g.Candidates(); len(got) != 0 {
		t.Errorf("after leave: %+v", got)
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := New(Config{NodeID: "", GossipKey: []byte{1}})
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("err %v", err)
	}
	for _, f := range []string{"NodeID", "ClusterID", "IdentityKey", "GossipKey", "Directory"} {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error does not name %s: %v", f, err)
		}
	}
	_, err = New(Config{NodeID: "n", ClusterID: "c", IdentityKey: key("n"), GossipKey: gossipKey, Directory: newTestDir(),
		Endpoints: make([]netip.AddrPort, MaxEndpoints+1)})
	if !errors.Is(err, ErrConfig) || !errors.Is(err, ErrMalformed) {
		t.Errorf("too many endpoints: %v", err)
	}
}

// memberlist re-delivers every member's unchanged meta in each alive message
// and push/pull merge, under its node lock; a record byte-identical to the
// accepted one must not cost another signature check, while every changed,
// older, tampered, revoked or re-keyed record still gets the full check.
func TestUnchangedRecordsNotReverified(t *testing.T) {
	dir := newTestDir()
	g := startNode(t, dir, "n0", 0)
	k1 := key("n1")
	dir.add("n1", k1.Public().(ed25519.PublicKey))
	d := &delegate{g: g}
	node := func(inc uint64) *memberlist.Node {
		m, err := EncodeRecord(Record{ClusterID: "c1", NodeID: "n1", Endpoints: []netip.AddrPort{meshEP(1)}, Incarnation: inc}, k1)
		if err != nil {
			t.Fatal(err)
		}
		return &memberlist.Node{Name: "n1", Addr: []byte{127, 0, 0, 1}, Port: 1, Meta: m}
	}
	checks := func() uint64 { return g.Stats().SigChecks }
	expect := func(what string, before, more uint64) {
		t.Helper()
		if got := checks() - before; got != more {
			t.Errorf("%s: %d signature checks, want %d", what, got, more)
		}
	}

	// Own meta, as every push/pull carries it: checked at most once.
	self := &memberlist.Node{Name: "n0", Meta: g.delegateMeta()}
	c0 := checks()
	for range 100 {
		if err := d.NotifyAlive(self); err != nil {
			t.Fatalf("own record: %v", err)
		}
	}
	expect("own unchanged record ×100", c0, 0)

	// First sight of n1: one check for NotifyAlive; the NotifyJoin that
	// stores it reuses that check; none for 100 re-deliveries.
	n100 := node(100)
	c0 = checks()
	if err := d.NotifyAlive(n100); err != nil {
		t.Fatal(err)
	}
	d.NotifyJoin(n100)
	expect("first alive+join", c0, 1)
	c0 = checks()
	for range 100 {
		if err := d.NotifyAlive(&memberlist.Node{Name: "n1", Meta: bytes.Clone(n100.Meta)}); err != nil {
			t.Fatalf("unchanged record refused: %v", err)
		}
	}
	expect("unchanged record ×100", c0, 0)

	// A tampered copy differs in bytes: full check, refused, n1 kept.
	bad := bytes.Clone(n100.Meta)
	bad[len(bad)-1] ^= 1
	c0 = checks()
	if err := d.NotifyAlive(&memberlist.Node{Name: "n1", Meta: bad}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered: %v", err)
	}
	expect("tampered", c0, 1)
	// The same bytes under another member's name are not the cached record.
	if err := d.NotifyAlive(&memberlist.Node{Name: "n2", Meta: n100.Meta}); err == nil {
		t.Error("n1's record accepted for member n2")
	}

	// Newer record: checked; the older one is then stale (checked, refused).
	n200 := node(200)
	c0 = checks()
	d.NotifyUpdate(n200)
	if err := d.NotifyAlive(n100); !errors.Is(err, ErrStale) {
		t.Errorf("replayed older record: %v", err)
	}
	expect("newer then replayed older", c0, 2)
	if got := g.Candidates(); len(got) != 1 || got[0].Incarnation != 200 {
		t.Fatalf("candidates %+v", got)
	}

	// Re-keyed in the directory: the cached record no longer passes.
	dir.add("n1", key("n1-new").Public().(ed25519.PublicKey))
	if err := d.NotifyAlive(n200); !errors.Is(err, ErrBadSignature) {
		t.Errorf("record under the old key after a key change: %v", err)
	}
	dir.add("n1", k1.Public().(ed25519.PublicKey))
	if err := d.NotifyAlive(n200); err != nil {
		t.Errorf("key restored: %v", err)
	}
	// Revoked: refused even though the bytes are the accepted ones.
	dir.revoke("n1")
	if err := d.NotifyAlive(n200); !errors.Is(err, ErrRevoked) {
		t.Errorf("revoked: %v", err)
	}
	if got := g.Candidates(); len(got) != 0 {
		t.Errorf("revoked node still a candidate: %+v", got)
	}
}
