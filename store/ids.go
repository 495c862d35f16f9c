package store

import (
	"context"
	"crypto/rand"
	"fmt"
)

// NewID returns a random (version 4) UUID string. IDs are made by the caller,
// not by the database, so a retried request can carry the same id.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("store: crypto/rand failed: %v", err))
	}
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// IsCanonicalUUID reports whether s is a UUID in PostgreSQL's text form
// (lowercase, 8-4-4-4-12): the Go side of the SQL function rap_uuid
// (migration 019), with which queries compare "col = rap_uuid($1)" and use
// the column's index. The hottest reads (a long poll's snapshot) check ids
// here instead and send "col = $1::uuid" only for ids that pass, so an id
// that is no uuid costs no round trip; either way exactly the ids in that
// form match.
func IsCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// Page selects a window of a list. Limit 0 means 50; at most 500.
type Page struct {
	Limit  int
	Offset int
}

func (p Page) norm() (int, int) {
	l := p.Limit
	if l <= 0 {
		l = 50
	}
	if l > 500 {
		l = 500
	}
	o := p.Offset
	if o < 0 {
		o = 0
	}
	return l, o
}

type scanner interface{ Scan(...any) error }

// collect runs a query and scans every row with scan.
func collect[T any](ctx context.Context, q Querier, scan func(scanner) (T, error), sql string, args ...any) ([]T, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		x, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, mapErr(rows.Err())
}
