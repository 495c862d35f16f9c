package rafttest

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

func TestStreamLayerBlockAndHeal(t *testing.T) {
	a, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer a.Close()
	b, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	defer b.Close()
	aAddr, bAddr := raft.ServerAddress(a.Addr().String()), raft.ServerAddress(b.Addr().String())

	// a dials b; b learns the peer is a.
	c, err := a.Dial(bAddr, time.Second)
	require.NoError(t, err)
	s, err := b.Accept()
	require.NoError(t, err)
	require.Equal(t, aAddr, s.(*conn).peer)
	_, err = c.Write([]byte("hi"))
	require.NoError(t, err)
	buf := make([]byte, 2)
	_, err = io.ReadFull(s, buf)
	require.NoError(t, err)

	// Blocking a on b's side closes the accepted conn: a's reads see EOF.
	b.Block(aAddr)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(buf)
	require.Error(t, err)

	// New dials from a are accepted by TCP but dropped by b after the header.
	c2, err := a.Dial(bAddr, time.Second)
	require.NoError(t, err)
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c2.Read(buf)
	require.Error(t, err)

	// Blocking on the dialer's side refuses the dial outright.
	a.Block(bAddr)
	_, err = a.Dial(bAddr, time.Second)
	require.True(t, errors.Is(err, ErrBlocked), "%v", err)

	a.Heal()
	b.Heal()
	c3, err := a.Dial(bAddr, time.Second)
	require.NoError(t, err)
	s3, err := b.Accept()
	require.NoError(t, err)
	_, err = s3.Write([]byte("ok"))
	require.NoError(t, err)
	_, err = io.ReadFull(c3, buf)
	require.NoError(t, err)
	require.Equal(t, "ok", string(buf))

	require.NoError(t, b.Close())
	_, err = b.Accept()
	require.ErrorIs(t, err, ErrClosed)
}
