package chaos

import (
	"encoding/binary"
	"fmt"
	"net"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Faults are installed as nftables rules inside the hosts' namespaces (table
// ip chaos, chains input and output, policy accept), through the netlink API
// of github.com/google/nftables — no nft binary is needed. A cut drops every
// packet between two hosts in both hosts' namespaces; loss drops a random
// share of the packets (numgen random mod 100 < pct); duplication copies a
// random share of outgoing packets back onto the wire (nftables dup to the
// peer's address via eth0), so the peer's TCP sees duplicate segments.
// Healing flushes the chains. Rules die with the namespaces.

type hostRules struct {
	blocked map[string]bool // peer IP
	loss    map[string]int  // peer IP → percent
	dup     map[string]int  // peer IP → percent
}

func (n *Network) rulesOf(h *Host) *hostRules {
	if n.fw == nil {
		n.fw = map[string]*hostRules{}
	}
	r := n.fw[h.Name]
	if r == nil {
		r = &hostRules{blocked: map[string]bool{}, loss: map[string]int{}, dup: map[string]int{}}
		n.fw[h.Name] = r
	}
	return r
}

// Partition cuts every link between hosts of different groups (in both
// directions, in both namespaces). Hosts not named keep their links. Earlier
// cuts stay until Heal.
func (n *Network) Partition(groups ...[]*Host) error {
	n.fwMu.Lock()
	defer n.fwMu.Unlock()
	touched := map[*Host]bool{}
	for i, gi := range groups {
		for j, gj := range groups {
			if i == j {
				continue
			}
			for _, a := range gi {
				for _, b := range gj {
					n.rulesOf(a).blocked[b.IP.String()] = true
					touched[a] = true
				}
			}
		}
	}
	return n.applyAll(touched)
}

// Isolate cuts h off from every host in from.
func (n *Network) Isolate(h *Host, from ...*Host) error {
	return n.Partition([]*Host{h}, from)
}

// SetLoss drops pct percent of the packets between h and each peer, chosen at
// random per packet (applied on h's side, both directions).
func (n *Network) SetLoss(h *Host, pct int, peers ...*Host) error {
	n.fwMu.Lock()
	defer n.fwMu.Unlock()
	for _, p := range peers {
		n.rulesOf(h).loss[p.IP.String()] = pct
	}
	return n.applyAll(map[*Host]bool{h: true})
}

// SetDuplication duplicates pct percent of h's outgoing packets to each peer.
func (n *Network) SetDuplication(h *Host, pct int, peers ...*Host) error {
	n.fwMu.Lock()
	defer n.fwMu.Unlock()
	for _, p := range peers {
		n.rulesOf(h).dup[p.IP.String()] = pct
	}
	return n.applyAll(map[*Host]bool{h: true})
}

// Heal removes every cut, loss and duplication rule of every host.
func (n *Network) Heal() error {
	n.fwMu.Lock()
	defer n.fwMu.Unlock()
	touched := map[*Host]bool{}
	for name := range n.fw {
		if h := n.Host(name); h != nil {
			touched[h] = true
		}
	}
	n.fw = nil
	return n.applyAll(touched)
}

// FaultSummary describes the installed rules, for reports.
func (n *Network) FaultSummary() string {
	n.fwMu.Lock()
	defer n.fwMu.Unlock()
	var parts []string
	for name, r := range n.fw {
		var b []string
		for ip := range r.blocked {
			b = append(b, ip)
		}
		sort.Strings(b)
		if len(b) > 0 {
			parts = append(parts, fmt.Sprintf("%s drops %s", name, strings.Join(b, ",")))
		}
		for ip, pct := range r.loss {
			parts = append(parts, fmt.Sprintf("%s loses %d%% to/from %s", name, pct, ip))
		}
		for ip, pct := range r.dup {
			parts = append(parts, fmt.Sprintf("%s duplicates %d%% to %s", name, pct, ip))
		}
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no rules"
	}
	return strings.Join(parts, "; ")
}

func (n *Network) applyAll(hosts map[*Host]bool) error {
	for h := range hosts {
		if err := n.apply(h); err != nil {
			return err
		}
	}
	return nil
}

var (
	fwTable = &nftables.Table{Name: "chaos", Family: nftables.TableFamilyIPv4}
	accept  = nftables.ChainPolicyAccept
)

// apply rewrites h's chaos table to match its rule set in one netlink batch.
func (n *Network) apply(h *Host) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.ns)))
	if err != nil {
		return fmt.Errorf("chaos: nftables in %s: %w", h.NSName, err)
	}
	r := n.rulesOf(h)
	c.AddTable(fwTable)
	in := c.AddChain(&nftables.Chain{Name: "input", Table: fwTable, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	out := c.AddChain(&nftables.Chain{Name: "output", Table: fwTable, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.FlushChain(in)
	c.FlushChain(out)
	for _, ip := range sortedKeys(r.blocked) {
		c.AddRule(&nftables.Rule{Table: fwTable, Chain: in, Exprs: append(matchAddr(12, ip), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})})
		c.AddRule(&nftables.Rule{Table: fwTable, Chain: out, Exprs: append(matchAddr(16, ip), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})})
	}
	for _, ip := range sortedKeys(r.loss) {
		pct := r.loss[ip]
		c.AddRule(&nftables.Rule{Table: fwTable, Chain: in, Exprs: concat(matchAddr(12, ip), randomBelow(pct), []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}})})
		c.AddRule(&nftables.Rule{Table: fwTable, Chain: out, Exprs: concat(matchAddr(16, ip), randomBelow(pct), []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}})})
	}
	if len(r.dup) > 0 {
		idx, err := ifIndexIn(h, "eth0")
		if err != nil {
			return err
		}
		for _, ip := range sortedKeys(r.dup) {
			pct := r.dup[ip]
			dup := []expr.Any{
				&expr.Immediate{Register: 2, Data: net.ParseIP(ip).To4()},
				&expr.Immediate{Register: 3, Data: binaryutil.NativeEndian.PutUint32(uint32(idx))},
				&expr.Dup{RegAddr: 2, RegDev: 3, IsRegDevSet: true},
			}
			c.AddRule(&nftables.Rule{Table: fwTable, Chain: out, Exprs: concat(matchAddr(16, ip), randomBelow(pct), []expr.Any{&expr.Counter{}}, dup)})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("chaos: nftables rules in %s: %w", h.NSName, err)
	}
	return nil
}

func ifIndexIn(h *Host, name string) (int, error) {
	var idx int
	err := h.Run(func() error {
		i, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		idx = i.Index
		return nil
	})
	return idx, err
}

// matchAddr matches the IPv4 source (offset 12) or destination (16) address.
func matchAddr(offset uint32, ip string) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net.ParseIP(ip).To4()},
	}
}

// randomBelow matches pct percent of packets: numgen random mod 100 < pct.
// numgen writes host byte order; cmp compares bytes, so the value is turned
// to network byte order first (as nft itself compiles it).
func randomBelow(pct int) []expr.Any {
	var lim [4]byte
	binary.BigEndian.PutUint32(lim[:], uint32(pct))
	return []expr.Any{
		&expr.Numgen{Register: 1, Modulus: 100, Type: unix.NFT_NG_RANDOM},
		&expr.Byteorder{SourceRegister: 1, DestRegister: 1, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Cmp{Op: expr.CmpOpLt, Register: 1, Data: lim[:]},
	}
}

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// DroppedPackets sums the counters of h's chaos rules (packets matched by
// cut, loss and duplication rules).
func (n *Network) DroppedPackets(h *Host) (uint64, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(h.ns)))
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, name := range []string{"input", "output"} {
		rules, err := c.GetRules(fwTable, &nftables.Chain{Name: name, Table: fwTable})
		if err != nil {
			return 0, err
		}
		for _, r := range rules {
			for _, e := range r.Exprs {
				if ce, ok := e.(*expr.Counter); ok {
					total += ce.Packets
				}
			}
		}
	}
	return total, nil
}
