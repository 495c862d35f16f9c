package state

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the newest schema this code base has migrations for (see
// migrate.go). A build may understand less (MaxSchema).
const SchemaVersion uint64 = 2

// Defaults for Options fields left zero.
const (
	DefaultLockTimeout      = 2 * time.Second
	DefaultMaxSnapshotBytes = 16 << 20
	DefaultMaxRecordBytes   = 16 << 20
)

// maxClusterIDLen bounds a cluster id (a bbolt bucket name).
const maxClusterIDLen = 128

// Bucket and key names. The layout is:
//
//	meta/schema_version          uint64 big endian
//	meta/created_at              RFC 3339 text
//	clusters/<cluster-id>/<key>  one record per key below
var (
	bucketMeta     = []byte("meta")
	bucketClusters = []byte("clusters")

	keySchemaVersion = []byte("schema_version")
	keyCreatedAt     = []byte("created_at")

	keyIdentity       = []byte("identity")
	keyMembership     = []byte("membership")
	keySnapshot       = []byte("snapshot")
	keyAppliedVersion = []byte("applied_version")
	keyAppliedAt      = []byte("applied_at")
	keyAppliedSHA256  = []byte("applied_sha256")
	keyPeers          = []byte("peer_cache")
	keyRoutes         = []byte("route_cache")
	keyServices       = []byte("service_assignments")
	keyHealth         = []byte("local_health")
	keyPartition      = []byte("partition")
	keyPendingUpdate  = []byte("pending_update")
)

// Clock supplies the current time for record timestamps.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure Open. The zero value is usable: every zero field takes
// its default.
type Options struct {
	// Clock stamps UpdatedAt/AppliedAt fields. Nil means the system clock.
	Clock Clock
	// LockTimeout is how long Open waits for another holder of the file lock
	// before returning ErrLocked. Zero means DefaultLockTimeout; it is never
	// unbounded.
	LockTimeout time.Duration
	// MaxSnapshotBytes bounds a snapshot passed to AdvanceAppliedVersion.
	// Zero means DefaultMaxSnapshotBytes.
	MaxSnapshotBytes int
	// MaxRecordBytes bounds one encoded JSON record. Zero means
	// DefaultMaxRecordBytes.
	MaxRecordBytes int
}

func (o *Options) fill() error {
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	if o.LockTimeout < 0 || o.MaxSnapshotBytes < 0 || o.MaxRecordBytes < 0 {
		return fmt.Errorf("%w: negative LockTimeout, MaxSnapshotBytes or MaxRecordBytes", ErrInvalidArgument)
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxSnapshotBytes == 0 {
		o.MaxSnapshotBytes = DefaultMaxSnapshotBytes
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	return nil
}

// Store is the open agent state file. Its methods are safe for concurrent
// use; bbolt serialises writers and lets readers run in parallel.
type Store struct {
	db   *bolt.DB
	path string
	opts Options
	// schema is the file's schema version (changed only by Migrate).
	schema atomic.Uint64
}

// Open opens (creating if absent, with mode 0600) the state file at path.
// Missing parent directories are created with mode 0700. It returns
// ErrInsecurePermissions, ErrLocked, ErrCorrupt or ErrNewerSchema (wrapped,
// with the path and detail) as described in the package documentation.
func Open(path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty state file path", ErrInvalidArgument)
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if err := checkMode(path, fi); err != nil {
			return nil, err
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("agent state: create directory for %s: %w", path, err)
		}
	} else {
		return nil, fmt.Errorf("agent state: stat %s: %w", path, err)
	}

	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		// Validate read-only first, under a shared lock: bbolt's read-only
		// open checks the meta pages but neither loads the freelist nor walks
		// the tree, so a damaged file can be refused (see validate.go) before
		// bbolt trusts its pages.
		if err := preflight(path, opts.LockTimeout); err != nil {
			return nil, err
		}
	}
	db, file, err := openBolt(path, opts.LockTimeout, false)
	if err != nil {
		return nil, err
	}
	// Re-check on the opened descriptor: the path may have been swapped
	// between Lstat and open.
	fi, err := file.Stat()
	if err == nil {
		err = checkMode(path, fi)
	}
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &Store{db: db, path: path, opts: opts}
	if err := s.initSchema(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func preflight(path string, timeout time.Duration) error {
	db, file, err := openBolt(path, timeout, true)
	if err != nil {
		return err
	}
	defer db.Close()
	fi, err := file.Stat()
	if err != nil {
		return fmt.Errorf("agent state: stat %s: %w", path, err)
	}
	if err := checkMode(path, fi); err != nil {
		return err
	}
	if err := checkStructure(file, fi.Size(), db.Info().PageSize); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return nil
}

func checkMode(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file (mode %s)", ErrInsecurePermissions, path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %#o; it holds private keys: check who read it, then chmod 0600", ErrInsecurePermissions, path, perm)
	}
	return nil
}

// openBolt opens the bbolt file, converting bbolt's errors and panics into
// this package's sentinels. The opened *os.File is captured so that a panic
// inside bolt.Open neither leaks the lock nor the descriptor (the mapping of
// a file that made bbolt panic is leaked; that only happens on a corrupt
// file, and Open then fails).
func openBolt(path string, timeout time.Duration, readOnly bool) (db *bolt.DB, file *os.File, err error) {
	var existed bool
	if fi, statErr := os.Stat(path); statErr == nil && fi.Size() > 0 {
		existed = true
	}
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				unlockFile(file)
				_ = file.Close()
			}
			db, file = nil, nil
			err = fmt.Errorf("%w: %s: bbolt failed while opening: %v", ErrCorrupt, path, r)
		}
	}()
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)

	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout:  timeout,
		ReadOnly: readOnly,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag|oNoFollow, perm)
			if err == nil {
				file = f
			}
			return f, err
		},
	})
	switch {
	case err == nil:
		return db, file, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, nil, fmt.Errorf("%w: %s: gave up after %s", ErrLocked, path, timeout)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, fs.ErrNotExist):
		return nil, nil, fmt.Errorf("agent state: open %s: %w", path, err)
	case existed:
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	default:
		return nil, nil, fmt.Errorf("agent state: open %s: %w", path, err)
	}
}

// guard runs fn on the current goroutine, turning a bbolt panic or a page
// fault (a corrupt or truncated mapping) into ErrCorrupt.
func guard(path string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	return fn()
}

func (s *Store) initSchema() error {
	return s.update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			foreign := false
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { foreign = true; return nil })
			if foreign {
				return fmt.Errorf("%w: %s: bbolt file without a meta bucket is not an agent state file", ErrCorrupt, s.path)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			// A new file has nothing to migrate: it starts at the newest
			// schema this build understands.
			if err := meta.Put(keySchemaVersion, u64(MaxSchema())); err != nil {
				return err
			}
			s.schema.Store(MaxSchema())
			if err := meta.Put(keyCreatedAt, []byte(s.opts.Clock.Now().UTC().Format(time.RFC3339Nano))); err != nil {
				return err
			}
			_, err = tx.CreateBucketIfNotExists(bucketClusters)
			return err
		}
		raw := meta.Get(keySchemaVersion)
		if len(raw) != 8 {
			return fmt.Errorf("%w: %s: schema version record is missing or malformed", ErrCorrupt, s.path)
		}
		v := binary.BigEndian.Uint64(raw)
		switch {
		case v > MaxSchema():
			return fmt.Errorf("%w: %s has schema %d, this agent supports up to %d; run a newer agent or restore an older file", ErrNewerSchema, s.path, v, MaxSchema())
		case v == 0:
			return fmt.Errorf("%w: %s: schema version 0", ErrCorrupt, s.path)
		}
		// v < MaxSchema(): the file stays at its schema (every schema this
		// build understands is readable and writable); a migration runs only
		// when a signed release manifest declares it (Migrate, migrate.go).
		s.schema.Store(v)
		_, err := tx.CreateBucketIfNotExists(bucketClusters)
		return err
	})
}

// Close releases the file and its lock. Calling it again is harmless.
func (s *Store) Close() error {
	return s.db.Close()
}

// Path returns the file path the store was opened with.
func (s *Store) Path() string { return s.path }

func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	return mapErr(guard(s.path, func() error { return s.db.View(fn) }))
}

func (s *Store) update(fn func(tx *bolt.Tx) error) error {
	return mapErr(guard(s.path, func() error { return s.db.Update(fn) }))
}

func mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

func validCluster(cluster string) error {
	if cluster == "" || len(cluster) > maxClusterIDLen {
		return fmt.Errorf("%w: cluster id must be 1..%d bytes", ErrInvalidArgument, maxClusterIDLen)
	}
	for _, r := range cluster {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("%w: cluster id %q has characters outside [A-Za-z0-9._-]", ErrInvalidArgument, cluster)
		}
	}
	return nil
}

// ns returns the cluster's namespace bucket, creating it if create is set.
func ns(tx *bolt.Tx, cluster string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(bucketClusters)
	if root == nil {
		return nil, fmt.Errorf("%w: clusters bucket missing", ErrCorrupt)
	}
	if create {
		return root.CreateBucketIfNotExists([]byte(cluster))
	}
	b := root.Bucket([]byte(cluster))
	if b == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoMembership, cluster)
	}
	return b, nil
}

// Memberships returns the cluster ids that have a namespace, sorted.
func (s *Store) Memberships() ([]string, error) {
	var out []string
	err := s.view(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketClusters)
		if root == nil {
			return fmt.Errorf("%w: clusters bucket missing", ErrCorrupt)
		}
		return root.ForEachBucket(func(k []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(out)
	return out, nil
}

// DeleteMembership removes the cluster's namespace and everything in it
// (identity, keys, snapshot, caches). Other memberships are untouched.
func (s *Store) DeleteMembership(cluster string) error {
	if err := validCluster(cluster); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		if _, err := ns(tx, cluster, false); err != nil {
			return err
		}
		return tx.Bucket(bucketClusters).DeleteBucket([]byte(cluster))
	})
}

// PutIdentity stores the identity of the node in cluster, creating the
// cluster's namespace if needed. id.ClusterID must equal cluster; the keys
// must have their exact sizes. UpdatedAt is set from the clock.
func (s *Store) PutIdentity(cluster string, id Identity) error {
	if err := validCluster(cluster); err != nil {
		return err
	}
	switch {
	case id.ClusterID != cluster:
		return fmt.Errorf("%w: identity cluster %q stored under %q", ErrInvalidArgument, id.ClusterID, cluster)
	case len(id.SigningKey) != ed25519.PrivateKeySize:
		return fmt.Errorf("%w: signing key is %d bytes, want %d", ErrInvalidArgument, len(id.SigningKey), ed25519.PrivateKeySize)
	case len(id.NoiseKey) != 32:
		return fmt.Errorf("%w: noise key is %d bytes, want 32", ErrInvalidArgument, len(id.NoiseKey))
	}
	id.UpdatedAt = s.opts.Clock.Now().UTC()
	return s.putJSON(cluster, keyIdentity, id, true)
}

// Identity returns the stored identity of cluster, ErrNoMembership or
// ErrNotFound.
func (s *Store) Identity(cluster string) (Identity, error) {
	var id Identity
	err := s.getJSON(cluster, keyIdentity, &id)
	return id, err
}

// PutMembership stores the membership record, creating the namespace if
// needed. m.ClusterID must equal cluster.
func (s *Store) PutMembership(cluster string, m Membership) error {
	if err := validCluster(cluster); err != nil {
		return err
	}
	if m.ClusterID != cluster {
		return fmt.Errorf("%w: membership cluster %q stored under %q", ErrInvalidArgument, m.ClusterID, cluster)
	}
	m.UpdatedAt = s.opts.Clock.Now().UTC()
	return s.putJSON(cluster, keyMembership, m, true)
}

// Membership returns the stored membership record of cluster.
func (s *Store) Membership(cluster string) (Membership, error) {
	var m Membership
	err := s.getJSON(cluster, keyMembership, &m)
	return m, err
}

// AdvanceAppliedVersion records snapshot as the applied snapshot of cluster at
// version, in one fsync'd transaction, if and only if version is strictly
// greater than the stored applied version (0 when none). Otherwise it returns
// ErrStaleVersion and changes nothing. The caller must have verified the
// snapshot's signature, audience and expiry before calling. Concurrent calls
// are serialised by bbolt; exactly one of two calls with the same version
// succeeds.
func (s *Store) AdvanceAppliedVersion(cluster string, version uint64, snapshot []byte) error {
	if err := validCluster(cluster); err != nil {
		return err
	}
	if len(snapshot) == 0 || len(snapshot) > s.opts.MaxSnapshotBytes {
		return fmt.Errorf("%w: snapshot is %d bytes, want 1..%d", ErrInvalidArgument, len(snapshot), s.opts.MaxSnapshotBytes)
	}
	now := s.opts.Clock.Now().UTC()
	return s.update(func(tx *bolt.Tx) error {
		b, err := ns(tx, cluster, false)
		if err != nil {
			return err
		}
		cur, err := appliedVersion(b)
		if err != nil {
			return err
		}
		if version <= cur {
			return fmt.Errorf("%w: cluster %q offered version %d, applied %d", ErrStaleVersion, cluster, version, cur)
		}
		if err := b.Put(keySnapshot, bytes.Clone(snapshot)); err != nil {
			return err
		}
		if err := b.Put(keyAppliedAt, []byte(now.Format(time.RFC3339Nano))); err != nil {
			return err
		}
		if fileSchema(tx) >= 2 {
			// Schema 2 keeps the applied snapshot's digest beside it.
			sum := sha256.Sum256(snapshot)
			if err := b.Put(keyAppliedSHA256, []byte(hex.EncodeToString(sum[:]))); err != nil {
				return err
			}
		}
		return b.Put(keyAppliedVersion, u64(version))
	})
}

// AppliedVersion returns the last applied snapshot version of cluster (the
// node's last applied config version), 0 if none was applied yet.
func (s *Store) AppliedVersion(cluster string) (uint64, error) {
	if err := validCluster(cluster); err != nil {
		return 0, err
	}
	var v uint64
	err := s.view(func(tx *bolt.Tx) error {
		b, err := ns(tx, cluster, false)
		if err != nil {
			return err
		}
		v, err = appliedVersion(b)
		return err
	})
	return v, err
}

// AppliedSnapshot returns the last applied snapshot of cluster, or
// ErrNotFound if none was applied yet. Raw is a copy owned by the caller.
func (s *Store) AppliedSnapshot(cluster string) (AppliedSnapshot, error) {
	if err := validCluster(cluster); err != nil {
		return AppliedSnapshot{}, err
	}
	var out AppliedSnapshot
	err := s.view(func(tx *bolt.Tx) error {
		b, err := ns(tx, cluster, false)
		if err != nil {
			return err
		}
		if out.Version, err = appliedVersion(b); err != nil {
			return err
		}
		raw := b.Get(keySnapshot)
		if out.Version == 0 || raw == nil {
			return fmt.Errorf("%w: no applied snapshot for cluster %q", ErrNotFound, cluster)
		}
		out.Raw = bytes.Clone(raw)
		if d := b.Get(keyAppliedSHA256); d != nil {
			out.SHA256 = string(d)
		} else {
			sum := sha256.Sum256(raw)
			out.SHA256 = hex.EncodeToString(sum[:])
		}
		if at := b.Get(keyAppliedAt); at != nil {
			t, err := time.Parse(time.RFC3339Nano, string(at))
			if err != nil {
				return fmt.Errorf("%w: cluster %q applied_at: %w", ErrCorrupt, cluster, err)
			}
			out.AppliedAt = t
		}
		return nil
	})
	return out, err
}

func appliedVersion(b *bolt.Bucket) (uint64, error) {
	raw := b.Get(keyAppliedVersion)
	if raw == nil {
		return 0, nil
	}
	if len(raw) != 8 {
		return 0, fmt.Errorf("%w: applied version record is %d bytes", ErrCorrupt, len(raw))
	}
	return binary.BigEndian.Uint64(raw), nil
}

// PutPeerCache replaces the peer cache of cluster.
func (s *Store) PutPeerCache(cluster string, c PeerCache) error {
	c.UpdatedAt = s.opts.Clock.Now().UTC()
	return s.putJSON(cluster, keyPeers, c, false)
}

// PeerCache returns the peer cache of cluster.
func (s *Store) PeerCache(cluster string) (PeerCache, error) {
	var c PeerCache
	err := s.getJSON(cluster, keyPeers, &c)
	return c, err
}

// PutRouteCache replaces the route cache of cluster.
func (s *Store) PutRouteCache(cluster string, c RouteCache) error {
	c.UpdatedAt = s.opts.Clock.Now().UTC()
	return s.putJSON(cluster, keyRoutes, c, false)
}

// RouteCache returns the route cache of cluster.
func (s *Store) RouteCache(cluster string) (RouteCache, error) {
	var c RouteCache
	err := s.getJSON(cluster, keyRoutes, &c)
	return c, err
}

// PutServiceAssignments replaces the service assignment cache of cluster.
func (s *Store) PutServiceAssignments(cluster string, a ServiceAssignments) error {
	a.UpdatedAt = s.opts.Clock.Now().UTC()
	return s.putJSON(cluster, keyServices, a, false)
}

// ServiceAssignments returns the service assignment cache of cluster.
func (s *Store) ServiceAssignments(cluster string) (ServiceAssignments, error) {
	var a ServiceAssignments
	err := s.getJSON(cluster, keyServices, &a)
	return a, err
}

// PutHealth replaces the local health record of cluster.
func (s *Store) PutHealth(cluster string, h LocalHealth) error {
	h.UpdatedAt = s.opts.Clock.Now().UTC()
	return s.putJSON(cluster, keyHealth, h, false)
}

// Health returns the local health record of cluster.
func (s *Store) Health(cluster string) (LocalHealth, error) {
	var h LocalHealth
	err := s.getJSON(cluster, keyHealth, &h)
	return h, err
}

// PutPartition records the agent's mode in cluster. p.Mode must be valid; a
// zero p.Since is set from the clock.
func (s *Store) PutPartition(cluster string, p PartitionInfo) error {
	if !p.Mode.Valid() {
		return fmt.Errorf("%w: unknown mode %q", ErrInvalidArgument, p.Mode)
	}
	if p.Since.IsZero() {
		p.Since = s.opts.Clock.Now().UTC()
	}
	return s.putJSON(cluster, keyPartition, p, false)
}

// Partition returns the agent's mode in cluster. A membership that never
// recorded one is ModeNormal with a zero Since.
func (s *Store) Partition(cluster string) (PartitionInfo, error) {
	var p PartitionInfo
	err := s.getJSON(cluster, keyPartition, &p)
	if errors.Is(err, ErrNotFound) {
		return PartitionInfo{Mode: ModeNormal}, nil
	}
	return p, err
}

// PutPendingUpdate records the update being staged or applied in cluster.
func (s *Store) PutPendingUpdate(cluster string, u PendingUpdate) error {
	return s.putJSON(cluster, keyPendingUpdate, u, false)
}

// PendingUpdate returns the pending update of cluster or ErrNotFound.
func (s *Store) PendingUpdate(cluster string) (PendingUpdate, error) {
	var u PendingUpdate
	err := s.getJSON(cluster, keyPendingUpdate, &u)
	return u, err
}

// ClearPendingUpdate removes the pending update record of cluster (no error if
// there is none).
func (s *Store) ClearPendingUpdate(cluster string) error {
	if err := validCluster(cluster); err != nil {
		return err
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := ns(tx, cluster, false)
		if err != nil {
			return err
		}
		return b.Delete(keyPendingUpdate)
	})
}

func (s *Store) putJSON(cluster string, key []byte, v any, create bool) error {
	if err := validCluster(cluster); err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%w: encode %s: %w", ErrInvalidArgument, key, err)
	}
	if len(raw) > s.opts.MaxRecordBytes {
		return fmt.Errorf("%w: %s record is %d bytes, limit %d", ErrInvalidArgument, key, len(raw), s.opts.MaxRecordBytes)
	}
	return s.update(func(tx *bolt.Tx) error {
		b, err := ns(tx, cluster, create)
		if err != nil {
			return err
		}
		return b.Put(key, raw)
	})
}

func (s *Store) getJSON(cluster string, key []byte, v any) error {
	if err := validCluster(cluster); err != nil {
		return err
	}
	return s.view(func(tx *bolt.Tx) error {
		b, err := ns(tx, cluster, false)
		if err != nil {
			return err
		}
		raw := b.Get(key)
		if raw == nil {
			return fmt.Errorf("%w: %s of cluster %q", ErrNotFound, key, cluster)
		}
		// Unmarshal copies out of the mmap before the transaction ends.
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%w: %s of cluster %q: %w", ErrCorrupt, key, cluster, err)
		}
		return nil
	})
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}
