package store_test

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/store"
)

// TestMapErrorBadInputIsConstraint: PostgreSQL's data exceptions (class 22:
// a NUL in text, a malformed or out-of-range value) are the client's fault
// and map to ErrConstraint, never to an unmapped (internal) error.
func TestMapErrorBadInputIsConstraint(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	for _, q := range []struct {
		sql string
		arg any
	}{
		{`SELECT $1::text`, "a\x00b"},             // 22021 invalid byte sequence (NUL)
		{`SELECT $1::text::uuid`, "not-a-uuid"},   // 22P02 invalid text representation
		{`SELECT $1::text::int`, "99999999999"},   // 22003 numeric value out of range
		{`SELECT $1::text::timestamptz`, "99:99"}, // 22007/22008 datetime
		{`SELECT $1::text::jsonb`, `"\u0000"`},    // 22P05 unsupported Unicode escape
	} {
		var out any
		err := store.MapError(db.Pool.QueryRow(ctx, q.sql, q.arg).Scan(&out))
		require.Error(t, err, q.sql)
		require.True(t, errors.Is(err, store.ErrConstraint), "%s with %q: %v", q.sql, q.arg, err)
	}
}

// TestMapErrorBrokenConnectionIsUnavailable: a connection that breaks
// mid-request (PostgreSQL restarted) maps to ErrUnavailable.
func TestMapErrorBrokenConnectionIsUnavailable(t *testing.T) {
	for _, err := range []error{io.EOF, io.ErrUnexpectedEOF, &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}} {
		require.True(t, errors.Is(store.MapError(err), store.ErrUnavailable), "%v", err)
	}
	require.False(t, errors.Is(store.MapError(errors.New("other")), store.ErrUnavailable))
}
