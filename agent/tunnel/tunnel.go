package tunnel

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
)

// Tunnel is one connection's running data path on this node. Safe for
// concurrent use.
type Tunnel struct {
	cfg     Config
	name    string
	ifindex int // of the TUN this Tunnel created (0 before)
	tun     *os.File
	tr      Transport
	flt     filter
	c       counters

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

// Start brings the connection's data path up on this node (at most one
// Tunnel per connection and namespace: a link or table of the same name is
// taken for a leftover and removed first): the TUN named
// Name(cfg.Prefix, cfg.ConnectionID) with cfg.Address and cfg.MTU, routes
// for the far side's prefixes (connector: RemotePrefixes, exit:
// ClientPrefixes) into it, forwarding and masquerade rules where
// cfg.Policy says so, a goroutine reading the TUN into tr and, unless tr
// is a Receiver, one writing tr.Recv's packets to the TUN. On error
// nothing it created is left behind. The caller keeps ownership of tr
// (Stop does not close it).
func Start(cfg Config, tr Transport) (*Tunnel, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if tr == nil {
		return nil, fmt.Errorf("%w: transport is required", ErrConfig)
	}
	t := &Tunnel{cfg: cfg, name: Name(cfg.Prefix, cfg.ConnectionID), tr: tr, flt: newFilter(cfg)}
	if err := t.setup(); err != nil {
		t.teardown()
		return nil, fmt.Errorf("%w: %s: %w", ErrSetup, t.name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	t.wg.Add(1)
	go t.fromTUN()
	if r, ok := tr.(Receiver); ok {
		r.SetReceiver(func(pkt []byte) { _ = t.deliver(pkt) })
	} else {
		t.wg.Add(1)
		go t.toTUN(ctx)
	}
	return t, nil
}

func (t *Tunnel) setup() error {
	cfg := t.cfg
	// A link or table of this name is a leftover (this process holds no
	// other tunnel of the same connection): remove it first.
	if err := deleteLink(cfg.NetNS, t.name); err != nil {
		return err
	}
	if err := deleteTable(cfg.NetNS, t.name); err != nil {
		return err
	}
	var err error
	if t.tun, err = openTUN(cfg.NetNS, t.name); err != nil {
		return err
	}
	h, err := netlinkHandle(cfg.NetNS)
	if err != nil {
		return err
	}
	defer h.Close()
	routes := cfg.ClientPrefixes
	if cfg.Role == RoleConnector {
		routes = cfg.RemotePrefixes
	}
	l, err := h.LinkByName(t.name)
	if err != nil {
		return fmt.Errorf("find %s: %w", t.name, err)
	}
	t.ifindex = l.Attrs().Index
	if err := configureLink(h, l, cfg, routes); err != nil {
		return err
	}
	if cfg.Policy.Forward {
		v6 := slices.ContainsFunc(slices.Concat(cfg.ClientPrefixes, cfg.RemotePrefixes, []netip.Prefix{cfg.Address}), func(p netip.Prefix) bool { return p.Addr().Is6() })
		if err := enableForwarding(cfg.NetNS, v6); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
		if err := addRules(cfg.NetNS, t.name, cfg.Policy.Masquerade, cfg.Policy.MasqueradeOnly); err != nil {
			return fmt.Errorf("nftables: %w", err)
		}
	}
	return nil
}

// teardown closes the TUN (which removes the device and its routes),
// deletes the link if it is still there and still the one this Tunnel
// created, and deletes the nftables table.
func (t *Tunnel) teardown() error {
	var errs []error
	if t.tun != nil {
		if err := t.tun.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if t.ifindex != 0 {
		errs = append(errs, deleteLinkIndex(t.cfg.NetNS, t.name, t.ifindex))
	}
	errs = append(errs, deleteTable(t.cfg.NetNS, t.name))
	return errors.Join(errs...)
}

// Name returns the TUN interface name.
func (t *Tunnel) Name() string { return t.name }

// Stats returns the counters.
func (t *Tunnel) Stats() Stats { return t.c.snapshot(t.name) }

// Stop stops forwarding at once and removes the interface, its routes and
// the nftables table. It is idempotent and returns the first Stop's error.
func (t *Tunnel) Stop() error {
	t.stopOnce.Do(func() {
		if r, ok := t.tr.(Receiver); ok {
			r.SetReceiver(nil)
		}
		t.cancel()
		// Closing the TUN unblocks fromTUN's Read; cancel unblocks Recv.
		err := t.teardown()
		t.wg.Wait()
		t.stopErr = err
	})
	return t.stopErr
}

// fromTUN reads packets the kernel routed into the tunnel and sends those
// the policy allows to the peer. One buffer, no allocation per packet.
func (t *Tunnel) fromTUN() {
	defer t.wg.Done()
	buf := make([]byte, t.cfg.MTU+64)
	for {
		n, err := t.tun.Read(buf)
		if err != nil {
			// Closed by Stop, or the device was deleted under us (the Go
			// poller already retries EINTR and EAGAIN): nothing more to read.
			return
		}
		pkt := buf[:n]
		if r, ok := t.flt.outbound(pkt); !ok {
			t.c.drops[r].Add(1)
			continue
		}
		if err := t.tr.Send(pkt); err != nil {
			t.c.drops[DropTransport].Add(1)
			continue
		}
		t.c.txPkts.Add(1)
		t.c.txBytes.Add(uint64(n))
	}
}

// toTUN writes packets from the peer that the policy allows to the TUN.
func (t *Tunnel) toTUN(ctx context.Context) {
	defer t.wg.Done()
	for {
		pkt, err := t.tr.Recv(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The transport is closed or broken: wait for Stop rather than spin.
			<-ctx.Done()
			return
		}
		if t.deliver(pkt) == os.ErrClosed {
			return
		}
	}
}

// deliver checks a packet from the peer against the policy and writes it
// to the TUN; it returns os.ErrClosed once the TUN is closed.
func (t *Tunnel) deliver(pkt []byte) error {
	if r, ok := t.flt.inbound(pkt); !ok {
		t.c.drops[r].Add(1)
		return nil
	}
	if _, err := t.tun.Write(pkt); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return os.ErrClosed
		}
		t.c.drops[DropWrite].Add(1)
		return nil
	}
	t.c.rxPkts.Add(1)
	t.c.rxBytes.Add(uint64(len(pkt)))
	return nil
}
