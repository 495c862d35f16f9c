package store

import (
	"context"
	"net"
	"time"
)

// Dead-peer detection on PostgreSQL connections. A primary that vanishes
// without closing its connections (a crashed machine, a partition) leaves a
// TCP connection that neither answers nor fails; a query on it, or a LISTEN
// waiting for notifications, would wait for the kernel's retransmission
// limit (about 15 minutes). Every connection therefore probes an idle peer
// (keepalive after 5 s idle, every 2 s, 3 probes) and gives up on data the
// peer does not acknowledge within deadPeerTimeout (TCP_USER_TIMEOUT on
// Linux), so the pool drops it and reconnects — to the promoted standby with a
// multi-host URL.
const (
	deadPeerTimeout = 10 * time.Second
	keepAliveIdle   = 5 * time.Second
	keepAliveEvery  = 2 * time.Second
	keepAliveProbes = 3
)

// dialer returns the dial function of every pooled connection.
func dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle, Interval: keepAliveEvery, Count: keepAliveProbes},
		Control:         setUserTimeout,
	}
	return d.DialContext
}
