// Package fsm is the authority group's Raft state machine: the few facts that
// must be agreed by a quorum and must not depend on PostgreSQL — the authority
// epoch, each cluster's CA keys and their rotation history, each cluster's
// gossip keys (sealed, current and previous per pool), each cluster's
// partition/authority state, the authority member list, the release root
// key set (public keys and threshold only) and the latest audit chain
// checkpoint (the anchor of PostgreSQL's audit log) — plus a bounded
// idempotency table so a retried command never applies twice.
//
// The FSM is a pure function of the log. Apply performs no I/O and reads no
// clock or randomness: timestamps, ids and key material (private keys already
// sealed by the leader, see Sealer) travel inside the commands. Snapshot copies
// state under a read lock; Persist does the I/O. The package must not import
// the network, a database, or anything of ours but domain.
//
// Use: the leader builds a Command, seals any private key, calls Encode with an
// idempotency key and proposes the bytes through Raft; the raft.ApplyFuture's
// Response() is a Result. Any replica answers reads through the accessors
// (Epoch, ClusterCA, Partition, Members…), which are safe for concurrent use.
package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/rap-fabric/core/domain"
)

// DefaultIdempotencyCapacity is the number of request ids remembered when
// Options.IdempotencyCapacity is zero.
const DefaultIdempotencyCapacity = 10000

// Options configure an FSM. Every replica of a group must use the same
// options, since eviction from the idempotency table is part of the state.
type Options struct {
	// IdempotencyCapacity bounds the idempotency table; the oldest request id is
	// forgotten first. Zero means DefaultIdempotencyCapacity.
	IdempotencyCapacity int
}

// Result is what Apply returns for every log entry (the ApplyFuture's
// Response()). Err is nil on success or a *CommandError.
type Result struct {
	// Index is the log index at which the command was first applied.
	Index uint64
	// Type is the command's type (zero when it did not decode).
	Type CommandType
	// Epoch is the authority epoch after the command: for ClaimEpoch, the epoch
	// just claimed.
	Epoch uint64
	// Replayed is true when the request id was seen before and this is the
	// stored result of the first application; nothing was applied again.
	Replayed bool
	// Err is the rejection, or nil.
	Err error
}

// EpochClaim is the last applied ClaimEpoch.
type EpochClaim struct {
	Epoch    uint64    `json:"epoch"`
	LeaderID string    `json:"leader_id"`
	Term     uint64    `json:"term"`
	Index    uint64    `json:"index"`
	At       time.Time `json:"at,omitzero"`
}

// CAKeyStatus says whether a CA key is the cluster's current signer, a
// rotated key still trusted during an overlap, or retired (carotation.go).
type CAKeyStatus string

// CA key statuses.
const (
	CAKeyCurrent CAKeyStatus = "current"
	CAKeyRotated CAKeyStatus = "rotated"
)

// CAKey is one cluster CA key. SealedPrivateKey is opaque to the FSM (see
// Sealer); Open it with AAD CAKeyAAD(clusterID, KeyID).
type CAKey struct {
	KeyID            string      `json:"key_id"`
	Status           CAKeyStatus `json:"status"`
	PublicKey        []byte      `json:"public_key"`
	SealedPrivateKey []byte      `json:"sealed_private_key"`
	CertDER          []byte      `json:"cert_der,omitempty"`
	CreatedAt        time.Time   `json:"created_at"`
	RotatedAt        time.Time   `json:"rotated_at,omitzero"`
	RetiredAt        time.Time   `json:"retired_at,omitzero"`
	Index            uint64      `json:"index"`
}

// ClusterCA is a cluster's CA: the current key and every rotated one, oldest
// first.
type ClusterCA struct {
	ClusterID string  `json:"cluster_id"`
	Current   CAKey   `json:"current"`
	History   []CAKey `json:"history,omitempty"`
}

// Key returns the key with id keyID, current or rotated.
func (c ClusterCA) Key(keyID string) (CAKey, bool) {
	if c.Current.KeyID == keyID {
		return c.Current, true
	}
	for _, k := range c.History {
		if k.KeyID == keyID {
			return k, true
		}
	}
	return CAKey{}, false
}

// Gossip key statuses.
const (
	GossipKeyCurrent  = "current"
	GossipKeyPrevious = "previous"
)

// GossipKey is one memberlist key of a cluster's gossip pool. SealedKey is
// opaque to the FSM; Open it with AAD GossipKeyAAD(clusterID, Pool, KeyID).
type GossipKey struct {
	Pool      string    `json:"pool,omitempty"`
	KeyID     string    `json:"key_id"`
	Status    string    `json:"status"`
	SealedKey []byte    `json:"sealed_key"`
	CreatedAt time.Time `json:"created_at"`
	Index     uint64    `json:"index"`
}

// PartitionInfo is a cluster's partition/authority state.
type PartitionInfo struct {
	ClusterID string                `json:"cluster_id"`
	State     domain.PartitionState `json:"state"`
	Reason    string                `json:"reason,omitempty"`
	Actor     string                `json:"actor,omitempty"`
	Epoch     uint64                `json:"epoch,omitempty"`
	At        time.Time             `json:"at,omitzero"`
	Index     uint64                `json:"index,omitempty"`
}

// Member is an authority group member as recorded in the FSM.
type Member struct {
	ID       string   `json:"id"`
	RaftAddr string   `json:"raft_addr"`
	APIAddr  string   `json:"api_addr,omitempty"`
	Suffrage Suffrage `json:"suffrage"`
}

// storedResult is a Result in the idempotency table (errors by code).
type storedResult struct {
	RequestID string      `json:"request_id"`
	Hash      string      `json:"hash"`
	Index     uint64      `json:"index"`
	Type      CommandType `json:"type"`
	Epoch     uint64      `json:"epoch"`
	ErrCode   Code        `json:"err_code,omitempty"`
	ErrDetail string      `json:"err_detail,omitempty"`
}

func (s storedResult) result() Result {
	r := Result{Index: s.Index, Type: s.Type, Epoch: s.Epoch, Replayed: true}
	if s.ErrCode != "" {
		r.Err = &CommandError{Code: s.ErrCode, Detail: s.ErrDetail}
	}
	return r
}

// snapshotVersion is the Persist format version.
const snapshotVersion = 1

// state is everything the FSM holds; its JSON is the snapshot format.
type state struct {
	Version      int                      `json:"version"`
	AppliedIndex uint64                   `json:"applied_index"`
	Epoch        uint64                   `json:"epoch"`
	LastClaim    EpochClaim               `json:"last_claim"`
	CAs          map[string]*ClusterCA    `json:"cas"`
	Partitions   map[string]PartitionInfo `json:"partitions"`
	Members      map[string]Member        `json:"members"`
	// GossipKeys are per cluster: each pool's current key and at most one
	// previous key, sorted by pool then status.
	GossipKeys  map[string][]GossipKey `json:"gossip_keys,omitempty"`
	Idempotency []storedResult         `json:"idempotency"`
	// ReleaseRoots is the release root key set (nil until registered).
	// Replaced, never mutated, so clone may share it.
	ReleaseRoots *ReleaseRoots `json:"release_roots,omitempty"`
	// AuditCheckpoint anchors the audit chain (nil until the first one).
	// Replaced, never mutated, so clone may share it.
	AuditCheckpoint *AuditCheckpoint `json:"audit_checkpoint,omitempty"`
}

func newState() *state {
	return &state{
		Version:    snapshotVersion,
		CAs:        map[string]*ClusterCA{},
		Partitions: map[string]PartitionInfo{},
		Members:    map[string]Member{},
		GossipKeys: map[string][]GossipKey{},
	}
}

// clone deep-copies the maps and slices. Byte slices inside keys are shared:
// the FSM never mutates a stored byte slice in place.
func (s *state) clone() *state {
	c := *s
	c.CAs = make(map[string]*ClusterCA, len(s.CAs))
	for k, v := range s.CAs {
		cv := *v
		cv.History = append([]CAKey(nil), v.History...)
		c.CAs[k] = &cv
	}
	c.Partitions = make(map[string]PartitionInfo, len(s.Partitions))
	for k, v := range s.Partitions {
		c.Partitions[k] = v
	}
	c.Members = make(map[string]Member, len(s.Members))
	for k, v := range s.Members {
		c.Members[k] = v
	}
	c.GossipKeys = make(map[string][]GossipKey, len(s.GossipKeys))
	for k, v := range s.GossipKeys {
		c.GossipKeys[k] = append([]GossipKey(nil), v...)
	}
	c.Idempotency = append([]storedResult(nil), s.Idempotency...)
	return &c
}

// FSM implements raft.FSM. Create it with New. Apply is called by Raft from a
// single goroutine; accessors may be called concurrently from any goroutine.
type FSM struct {
	capacity int

	mu    sync.RWMutex
	st    *state
	idIdx map[string]int // request id → position in st.Idempotency, plus idOff
	idOff int            // number of entries evicted since idIdx was built
}

var _ raft.FSM = (*FSM)(nil)

// New returns an empty FSM.
func New(opts Options) *FSM {
	c := opts.IdempotencyCapacity
	if c <= 0 {
		c = DefaultIdempotencyCapacity
	}
	return &FSM{capacity: c, st: newState(), idIdx: map[string]int{}}
}

// Apply applies one committed log entry and returns a Result. It must be
// deterministic: the same entries in the same order give the same state and
// results on every replica. It never panics on bad input.
func (f *FSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l.Index > f.st.AppliedIndex {
		f.st.AppliedIndex = l.Index
	}
	d, err := Decode(l.Data)
	if err != nil {
		r := Result{Index: l.Index, Epoch: f.st.Epoch, Err: err}
		if len(l.Data) >= 2 && l.Data[0] == Version1 && !errors.Is(err, ErrUnknownType) {
			r.Type = CommandType(l.Data[1])
		}
		return r
	}
	var hash string
	if d.RequestID != "" {
		sum := sha256.Sum256(l.Data)
		hash = hex.EncodeToString(sum[:])
		if pos, ok := f.idIdx[d.RequestID]; ok {
			prev := f.st.Idempotency[pos-f.idOff]
			if prev.Hash != hash {
				return Result{Index: l.Index, Type: d.Command.Type(), Epoch: f.st.Epoch,
					Err: cmdErr(ErrRequestIDConflict, d.RequestID)}
			}
			return prev.result()
		}
	}
	res := f.apply(l.Index, d.Command)
	res.Index, res.Type, res.Epoch = l.Index, d.Command.Type(), f.st.Epoch
	if d.RequestID != "" {
		f.remember(d.RequestID, hash, res)
	}
	return res
}

func (f *FSM) remember(id, hash string, r Result) {
	sr := storedResult{RequestID: id, Hash: hash, Index: r.Index, Type: r.Type, Epoch: r.Epoch}
	if ce, ok := r.Err.(*CommandError); ok {
		sr.ErrCode, sr.ErrDetail = ce.Code, ce.Detail
	}
	f.st.Idempotency = append(f.st.Idempotency, sr)
	f.idIdx[id] = f.idOff + len(f.st.Idempotency) - 1
	for len(f.st.Idempotency) > f.capacity {
		delete(f.idIdx, f.st.Idempotency[0].RequestID)
		f.st.Idempotency[0] = storedResult{}
		f.st.Idempotency = f.st.Idempotency[1:]
		f.idOff++
	}
	// Compact the backing array now and then so eviction stays O(1) amortised.
	if cap(f.st.Idempotency) > 4*f.capacity+64 {
		f.st.Idempotency = append([]storedResult(nil), f.st.Idempotency...)
	}
}

func (f *FSM) apply(index uint64, c Command) Result {
	s := f.st
	switch c := c.(type) {
	case ClaimEpoch:
		if c.Term < s.LastClaim.Term {
			return Result{Err: cmdErr(ErrStaleClaim, fmt.Sprintf("term %d < last claim term %d", c.Term, s.LastClaim.Term))}
		}
		e := max(s.Epoch+1, c.Term)
		s.Epoch = e
		s.LastClaim = EpochClaim{Epoch: e, LeaderID: c.LeaderID, Term: c.Term, Index: index, At: c.At.UTC()}
	case CreateClusterCA:
		if _, ok := s.CAs[c.ClusterID]; ok {
			return Result{Err: cmdErr(ErrCAExists, c.ClusterID)}
		}
		s.CAs[c.ClusterID] = &ClusterCA{ClusterID: c.ClusterID, Current: CAKey{
			KeyID: c.KeyID, Status: CAKeyCurrent, PublicKey: c.PublicKey,
			SealedPrivateKey: c.SealedPrivateKey, CertDER: c.CertDER, CreatedAt: c.At.UTC(), Index: index,
		}}
	case RotateClusterCA:
		ca, ok := s.CAs[c.ClusterID]
		if !ok {
			return Result{Err: cmdErr(ErrNoCA, c.ClusterID)}
		}
		if _, used := ca.Key(c.KeyID); used {
			return Result{Err: cmdErr(ErrKeyIDReused, c.KeyID)}
		}
		old := ca.Current
		old.Status, old.RotatedAt = CAKeyRotated, c.At.UTC()
		// Replace, don't mutate: snapshots share *ClusterCA values' slices.
		next := &ClusterCA{ClusterID: ca.ClusterID, History: append(append([]CAKey(nil), ca.History...), old)}
		next.Current = CAKey{
			KeyID: c.KeyID, Status: CAKeyCurrent, PublicKey: c.PublicKey,
			SealedPrivateKey: c.SealedPrivateKey, CertDER: c.CertDER, CreatedAt: c.At.UTC(), Index: index,
		}
		s.CAs[c.ClusterID] = next
	case SetPartition:
		s.Partitions[c.ClusterID] = PartitionInfo{ClusterID: c.ClusterID, State: c.State, Reason: c.Reason,
			Actor: c.Actor, Epoch: c.Epoch, At: c.At.UTC(), Index: index}
	case UpsertMember:
		s.Members[c.ID] = Member(c)
	case RemoveMember:
		if _, ok := s.Members[c.ID]; !ok {
			return Result{Err: cmdErr(ErrUnknownMember, c.ID)}
		}
		delete(s.Members, c.ID)
	case SetGossipKey:
		return applyGossipKey(s, index, c)
	case SetReleaseRoots:
		return applyReleaseRoots(s, index, c)
	case SetAuditCheckpoint:
		return applyAuditCheckpoint(s, index, c)
	case RetireClusterCA:
		return applyRetireClusterCA(s, c)
	case ReanchorAudit:
		return applyReanchorAudit(s, index, c)
	default:
		return Result{Err: cmdErr(ErrUnknownType, c.Type().String())}
	}
	return Result{}
}

func applyGossipKey(s *state, index uint64, c SetGossipKey) Result {
	old := s.GossipKeys[c.ClusterID]
	var next []GossipKey
	for _, k := range old {
		if k.Pool != c.Pool {
			next = append(next, k)
			continue
		}
		if k.KeyID == c.KeyID {
			return Result{Err: cmdErr(ErrKeyIDReused, c.KeyID)}
		}
		if k.Status == GossipKeyCurrent {
			if c.OnlyIfNone {
				return Result{Err: cmdErr(ErrGossipKeyExists, c.ClusterID+"/"+c.Pool)}
			}
			k.Status = GossipKeyPrevious
			next = append(next, k)
		}
	}
	// Replace, don't mutate: snapshots share the old slice.
	next = append(next, GossipKey{Pool: c.Pool, KeyID: c.KeyID, Status: GossipKeyCurrent, SealedKey: c.SealedKey,
		CreatedAt: c.At.UTC(), Index: index})
	sort.SliceStable(next, func(i, j int) bool {
		if next[i].Pool != next[j].Pool {
			return next[i].Pool < next[j].Pool
		}
		return next[i].Status < next[j].Status // "current" before "previous"
	})
	s.GossipKeys[c.ClusterID] = next
	return Result{}
}

// Snapshot captures a copy of the state; Persist writes it. Raft calls it from
// the FSM goroutine, never concurrently with Apply.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &snapshot{st: f.st.clone()}, nil
}

// Restore replaces the whole state with a snapshot written by Persist. Raft
// calls it with no concurrent Apply.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := newState()
	st.Version = 0
	if err := json.NewDecoder(rc).Decode(st); err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if st.Version != snapshotVersion {
		return fmt.Errorf("%w: %d", ErrSnapshotVersion, st.Version)
	}
	if st.CAs == nil {
		st.CAs = map[string]*ClusterCA{}
	}
	if st.Partitions == nil {
		st.Partitions = map[string]PartitionInfo{}
	}
	if st.Members == nil {
		st.Members = map[string]Member{}
	}
	if st.GossipKeys == nil {
		st.GossipKeys = map[string][]GossipKey{}
	}
	if n := len(st.Idempotency) - f.capacity; n > 0 {
		st.Idempotency = st.Idempotency[n:]
	}
	idx := make(map[string]int, len(st.Idempotency))
	for i, r := range st.Idempotency {
		idx[r.RequestID] = i
	}
	f.mu.Lock()
	f.st, f.idIdx, f.idOff = st, idx, 0
	f.mu.Unlock()
	return nil
}

type snapshot struct{ st *state }

// Persist writes the snapshot as JSON to sink and closes it (or cancels it on
// error).
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.st); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist: %w", err)
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot; the copy needs no release.
func (s *snapshot) Release() {}

// AgreedEpoch returns the authority epoch the Raft log agreed on: the epoch
// of the last applied ClaimEpoch (0 before the first claim). Compare
// raftnode's ClaimedEpoch (this node's own leadership) and the authority's
// FenceEpoch (the PostgreSQL fence this process holds).
func (f *FSM) AgreedEpoch() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.Epoch
}

// LastClaim returns the last applied epoch claim.
func (f *FSM) LastClaim() EpochClaim {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.LastClaim
}

// AppliedIndex returns the highest log index applied.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.AppliedIndex
}

// ClusterCA returns a copy of a cluster's CA (current key and history).
func (f *FSM) ClusterCA(clusterID string) (ClusterCA, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ca, ok := f.st.CAs[clusterID]
	if !ok {
		return ClusterCA{}, false
	}
	c := *ca
	c.History = append([]CAKey(nil), ca.History...)
	return c, true
}

// GossipKeys returns a copy of a cluster's gossip keys: per pool the current
// key and at most one previous key, sorted by pool ("current" first).
func (f *FSM) GossipKeys(clusterID string) []GossipKey {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return append([]GossipKey(nil), f.st.GossipKeys[clusterID]...)
}

// Clusters returns the ids of clusters with a CA, sorted.
func (f *FSM) Clusters() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	ids := make([]string, 0, len(f.st.CAs))
	for id := range f.st.CAs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// Partition returns a cluster's partition state. A cluster never set is
// normal, and ok is false.
func (f *FSM) Partition(clusterID string) (info PartitionInfo, ok bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.st.Partitions[clusterID]
	if !ok {
		return PartitionInfo{ClusterID: clusterID, State: domain.PartitionNormal}, false
	}
	return p, true
}

// Members returns the authority members sorted by id.
func (f *FSM) Members() []Member {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Member, 0, len(f.st.Members))
	for _, m := range f.st.Members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Member returns one authority member.
func (f *FSM) Member(id string) (Member, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	m, ok := f.st.Members[id]
	return m, ok
}

// Dump renders the whole state as deterministic text: equal states dump
// equal. Tests compare replicas and golden files with it.
func (f *FSM) Dump() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.st
	var b strings.Builder
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintf(&b, "applied %d\n", s.AppliedIndex)
	fmt.Fprintf(&b, "epoch %d leader=%s term=%d index=%d at=%s\n", s.Epoch, s.LastClaim.LeaderID,
		s.LastClaim.Term, s.LastClaim.Index, ts(s.LastClaim.At))
	key := func(k CAKey) {
		fmt.Fprintf(&b, "  key %s %s pub=%x sealed=%x cert=%x created=%s rotated=%s index=%d", k.KeyID, k.Status,
			k.PublicKey, k.SealedPrivateKey, k.CertDER, ts(k.CreatedAt), ts(k.RotatedAt), k.Index)
		if !k.RetiredAt.IsZero() {
			fmt.Fprintf(&b, " retired=%s", ts(k.RetiredAt))
		}
		b.WriteString("\n")
	}
	for _, id := range sortedKeys(s.CAs) {
		ca := s.CAs[id]
		fmt.Fprintf(&b, "ca %s\n", id)
		key(ca.Current)
		for _, k := range ca.History {
			key(k)
		}
	}
	for _, id := range sortedKeys(s.GossipKeys) {
		for _, k := range s.GossipKeys[id] {
			fmt.Fprintf(&b, "gossip-key %s pool=%q %s %s sealed=%x created=%s index=%d\n", id, k.Pool, k.KeyID, k.Status,
				k.SealedKey, ts(k.CreatedAt), k.Index)
		}
	}
	for _, id := range sortedKeys(s.Partitions) {
		p := s.Partitions[id]
		fmt.Fprintf(&b, "partition %s %s reason=%q actor=%s epoch=%d at=%s index=%d\n", id, p.State, p.Reason,
			p.Actor, p.Epoch, ts(p.At), p.Index)
	}
	b.WriteString(dumpReleaseRoots(s, ts))
	b.WriteString(dumpAuditCheckpoint(s, ts))
	for _, id := range sortedKeys(s.Members) {
		m := s.Members[id]
		fmt.Fprintf(&b, "member %s raft=%s api=%s %s\n", id, m.RaftAddr, m.APIAddr, m.Suffrage)
	}
	fmt.Fprintf(&b, "idempotency %d\n", len(s.Idempotency))
	for _, r := range s.Idempotency {
		fmt.Fprintf(&b, "  %s index=%d %s epoch=%d", r.RequestID, r.Index, r.Type, r.Epoch)
		if r.ErrCode != "" {
			fmt.Fprintf(&b, " err=%s", r.ErrCode)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Remembered returns the stored result of the command first applied with
// requestID, if the idempotency table still holds it. A caller whose retry
// cannot rebuild the identical command (fresh key material, say) uses it to
// find what the first attempt did.
func (f *FSM) Remembered(requestID string) (Result, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	i, ok := f.idIdx[requestID]
	if !ok {
		return Result{}, false
	}
	r := f.st.Idempotency[i-f.idOff].result()
	r.Replayed = true
	return r, true
}
