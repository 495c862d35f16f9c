package audit

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sync"
	"time"
)

// Store persists hash chains. Implementations must be safe for concurrent use.
//
// Appends to one chain must be serialised so the chain stays linear: the
// PostgreSQL implementation does, in one transaction,
//
//	SELECT seq, hash FROM audit_chain_heads WHERE chain_id = $1 FOR UPDATE;
//	-- (insert the head row with the genesis hash the first time)
//	-- call build(head) -> event
//	INSERT INTO cluster_audit_events (...) VALUES (...);   -- UNIQUE (chain_id, seq)
//	UPDATE audit_chain_heads SET seq = $2, hash = $3 WHERE chain_id = $1;
//	COMMIT;
//
// (pg_advisory_xact_lock(hashtext(chain_id)) is an equivalent lock). The
// UNIQUE (chain_id, seq) constraint is the backstop: a second writer that
// somehow chained onto the same head fails instead of forking the chain.
// Columns must round-trip exactly: timestamps as timestamptz (microseconds),
// Details as json or text (not jsonb, which rewrites numbers), hashes as bytea.
type Store interface {
	// Append calls build with the current head of chainID (Genesis(chainID) for
	// an empty chain) while holding that chain's append lock, then stores the
	// returned event and makes it the new head, atomically. If build fails,
	// nothing is stored and its error is returned. build must be fast and must
	// not call the Store.
	Append(ctx context.Context, chainID string, build func(head Head) (Event, error)) (Event, error)
	// Head returns the current head of chainID (Genesis(chainID) if empty).
	Head(ctx context.Context, chainID string) (Head, error)
	// Events yields the events of chainID with Seq >= from in ascending Seq
	// order, as stored (no re-validation).
	Events(ctx context.Context, chainID string, from int64) iter.Seq2[Event, error]
}

// Clock supplies the time stamped on events.
type Clock interface {
	// Now returns the current time; safe for concurrent use.
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// LogOptions configures NewLog.
type LogOptions struct {
	Store Store // required
	Clock Clock // nil: the wall clock
}

// Log records events onto their cluster's chain and verifies chains.
type Log struct {
	store Store
	clock Clock
}

// NewLog returns a Log over opts.Store.
func NewLog(opts LogOptions) (*Log, error) {
	if opts.Store == nil {
		return nil, fmt.Errorf("%w: store is nil", ErrInvalidConfig)
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	return &Log{store: opts.Store, clock: opts.Clock}, nil
}

// Record appends e to the chain named by e.ClusterID ("" for platform events),
// stamping At from the clock when it is zero, and returns the stored event.
func (l *Log) Record(ctx context.Context, e Event) (Event, error) {
	if e.At.IsZero() {
		e.At = l.clock.Now()
	}
	if _, err := Normalize(e); err != nil {
		return Event{}, err
	}
	return l.store.Append(ctx, e.ClusterID, func(head Head) (Event, error) { return Chain(head, e) })
}

// Verify checks the whole chain chainID from its genesis. expect, if not nil,
// is an independently recorded head the chain must contain.
func (l *Log) Verify(ctx context.Context, chainID string, expect *Head) (Result, error) {
	return Verify(l.store.Events(ctx, chainID, 1), VerifyOptions{Start: Genesis(chainID), Expect: expect})
}

// MemStore is an in-memory Store: one mutex serialises appends, as the
// database's row lock does. For tests and development.
type MemStore struct {
	mu     sync.Mutex
	chains map[string][]Event
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{chains: map[string][]Event{}} }

// Append implements Store.
func (m *MemStore) Append(ctx context.Context, chainID string, build func(Head) (Event, error)) (Event, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	head := m.headLocked(chainID)
	e, err := build(head)
	if err != nil {
		return Event{}, err
	}
	if e.Seq != head.Seq+1 || e.PrevHash != head.Hash {
		return Event{}, fmt.Errorf("audit: event seq %d does not extend head seq %d", e.Seq, head.Seq)
	}
	e.Risk = cloneMap(e.Risk)
	e.Details = slices.Clone(e.Details)
	m.chains[chainID] = append(m.chains[chainID], e)
	return e, nil
}

func (m *MemStore) headLocked(chainID string) Head {
	c := m.chains[chainID]
	if len(c) == 0 {
		return Genesis(chainID)
	}
	return c[len(c)-1].Head()
}

// Head implements Store.
func (m *MemStore) Head(_ context.Context, chainID string) (Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.headLocked(chainID), nil
}

// Events implements Store. It iterates over a snapshot taken at the first
// call, so concurrent appends do not disturb an ongoing walk.
func (m *MemStore) Events(_ context.Context, chainID string, from int64) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		m.mu.Lock()
		snap := slices.Clone(m.chains[chainID])
		m.mu.Unlock()
		for _, e := range snap {
			if e.Seq < from {
				continue
			}
			e.Risk = cloneMap(e.Risk)
			e.Details = slices.Clone(e.Details)
			if !yield(e, nil) {
				return
			}
		}
	}
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var _ Store = (*MemStore)(nil)
