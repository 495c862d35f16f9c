package runtime

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTermMargin(t *testing.T) {
	require.Equal(t, 300*time.Millisecond, termMargin(3*time.Second))
	require.Equal(t, 200*time.Millisecond, termMargin(2*time.Second))
	require.Equal(t, 500*time.Millisecond, termMargin(30*time.Second), "at most 500 ms")
}

// Network calls of the VPN loop never outlast the earliest local term of a
// held lease; without a held lease they are bounded only by the caller.
func TestCallCtxBoundedByHeldTerms(t *testing.T) {
	m := &member{}
	now := time.Now()
	run := &vpnRun{conns: map[string]*vpnConn{
		"a": {holding: true, deadline: now.Add(2 * time.Second)},
		"b": {holding: true, deadline: now.Add(time.Second)},
		"c": {suspended: true, deadline: now.Add(-time.Second)}, // not held: no bound
		"d": {},
	}}
	ctx, cancel := m.callCtx(context.Background(), run)
	dl, ok := ctx.Deadline()
	cancel()
	require.True(t, ok)
	require.Equal(t, now.Add(time.Second), dl)

	// A held lease renewed 1.5 s ago (term 3 s): calls end when its renewal
	// has been overdue for a renewal interval (2 s after it), before the
	// term's end; once that moment has passed, the term bounds them again.
	renewed := time.Now().Add(-1500 * time.Millisecond)
	run = &vpnRun{conns: map[string]*vpnConn{"a": {holding: true, ttl: 3 * time.Second, renewedAt: renewed, deadline: renewed.Add(2700 * time.Millisecond)}}}
	ctx, cancel = m.callCtx(context.Background(), run)
	dl, _ = ctx.Deadline()
	cancel()
	require.Equal(t, renewed.Add(2*time.Second), dl)
	run.conns["a"].renewedAt = time.Now().Add(-2500 * time.Millisecond)
	run.conns["a"].deadline = run.conns["a"].renewedAt.Add(2700 * time.Millisecond)
	ctx, cancel = m.callCtx(context.Background(), run)
	dl, _ = ctx.Deadline()
	cancel()
	require.Equal(t, run.conns["a"].deadline, dl)

	ctx, cancel = m.callCtx(context.Background(), &vpnRun{conns: map[string]*vpnConn{"c": {suspended: true}}})
	_, ok = ctx.Deadline()
	cancel()
	require.False(t, ok)
}

func TestItoa64(t *testing.T) {
	for v, s := range map[int64]string{0: "0", 7: "7", 42: "42", -3: "-3", 9223372036854775807: "9223372036854775807"} {
		require.Equal(t, s, itoa64(v))
	}
}
