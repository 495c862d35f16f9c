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
