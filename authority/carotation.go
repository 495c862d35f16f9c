package authority

// Cluster CA rotation (owner actions, step-up at the API, fenced, audited):
//
//   - RotateClusterCA creates a new CA key through Raft. The cluster enters an
//     overlap: both roots are trusted, renewals of nodes that pin the new
//     (active) root are issued by it (issuingRootFor), and what every node
//     must verify before it learned the new root — snapshots, enrollments'
//     certificates and the authorities' TLS server certificates — is still
//     signed by the old one (fsm.ClusterCA.Publishing). Every node's
//     snapshot is re-signed carrying both roots (ca_roots); agents move
//     their pins and renew from the active root (agent/runtime/caroots.go).
//   - RetireClusterCA ends the overlap once every active member holds a
//     certificate of the new root (or with force): certificates of the old
//     root are refused from then on (code ca_retired), snapshots and server
//     certificates move to the new root, and new join tokens pin it.
//   - ClusterCA reports the roots and how many nodes hold each.

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// CA rotation error codes.
const (
	// CodeCARetired: a node certificate of a retired cluster CA root.
	CodeCARetired Code = "ca_retired"
	// CodeCARotationInProgress: a rotation is already in its overlap; retire
	// the old root first.
	CodeCARotationInProgress Code = "ca_rotation_in_progress"
	// CodeCANoRotation: retirement asked while no rotation overlaps.
	CodeCANoRotation Code = "ca_no_rotation"
	// CodeCARetireUnsafe: active nodes still hold certificates of the root
	// to retire (they would be locked out); force overrides.
	CodeCARetireUnsafe Code = "ca_retire_unsafe"
)

// CARootView is one root of a cluster CA as the owner sees it.
type CARootView struct {
	KeyID string `json:"key_id"`
	// Status: current (issues node certificates), rotated (the old root,
	// trusted during the overlap) or retired.
	Status string `json:"status"`
	// Publishing is true for the root that signs snapshots and server
	// certificates.
	Publishing bool   `json:"publishing"`
	Pin        string `json:"pin"`
	CreatedAt  string `json:"created_at"`
	RotatedAt  string `json:"rotated_at,omitempty"`
	RetiredAt  string `json:"retired_at,omitempty"`
	// Nodes is how many active members hold a current certificate of this
	// root.
	Nodes int `json:"nodes"`
}

// ClusterCAView is the body of GET /v1/clusters/{c}/ca.
type ClusterCAView struct {
	ClusterID string       `json:"cluster_id"`
	Overlap   bool         `json:"overlap"`
	Roots     []CARootView `json:"roots"`
	// NodesOnOldRoots lists (at most 100) active nodes whose certificate is
	// not of the current root.
	NodesOnOldRoots []string `json:"nodes_on_old_roots"`
	// Unknown counts certificates that verify against no root.
	Unknown int `json:"unknown"`
}

// RetireCARequest is the body of POST /v1/clusters/{c}/ca/retire.
type RetireCARequest struct {
	// Force retires even when active nodes still hold certificates of the
	// old root (they are refused with ca_retired until re-enrolled).
	Force bool `json:"force"`
}

func rfc(t interface{ IsZero() bool }, s string) string {
	if t.IsZero() {
		return ""
	}
	return s
}

// ClusterCA reports a cluster's CA roots and how many active nodes hold a
// certificate of each.
func (a *Authority) ClusterCA(ctx context.Context, cluster string) (ClusterCAView, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return ClusterCAView{}, err
	}
	return a.clusterCAView(ctx, c.ID)
}

func (a *Authority) clusterCAView(ctx context.Context, clusterID string) (ClusterCAView, error) {
	ca, ok := a.state.ClusterCA(clusterID)
	if !ok {
		return ClusterCAView{}, Errf(CodeNotFound, "cluster %s has no CA on this authority", clusterID)
	}
	certs, err := store.CurrentNodeCertificates(ctx, a.db.Pool, clusterID)
	if err != nil {
		return ClusterCAView{}, asError(err)
	}
	keys := append(append([]fsm.CAKey(nil), ca.History...), ca.Current)
	parsed := make([]*x509.Certificate, len(keys))
	for i, k := range keys {
		parsed[i], _ = x509.ParseCertificate(k.CertDER)
	}
	counts := make([]int, len(keys))
	v := ClusterCAView{ClusterID: clusterID, Overlap: ca.InOverlap(), NodesOnOldRoots: []string{}}
	for _, nc := range certs {
		cert, err := x509.ParseCertificate(nc.DER)
		if err != nil {
			v.Unknown++
			continue
		}
		i := issuerIndex(cert, parsed)
		if i < 0 {
			v.Unknown++
			continue
		}
		counts[i]++
		if keys[i].KeyID != ca.Current.KeyID && len(v.NodesOnOldRoots) < 100 {
			v.NodesOnOldRoots = append(v.NodesOnOldRoots, nc.NodeID)
		}
	}
	pub := ca.Publishing().KeyID
	for i, k := range keys {
		pin, _ := pki.PinDER(k.CertDER)
		v.Roots = append(v.Roots, CARootView{KeyID: k.KeyID, Status: string(k.Status), Publishing: k.KeyID == pub, Pin: pin,
			CreatedAt: k.CreatedAt.Format(timeFormat), RotatedAt: rfc(k.RotatedAt, k.RotatedAt.Format(timeFormat)),
			RetiredAt: rfc(k.RetiredAt, k.RetiredAt.Format(timeFormat)), Nodes: counts[i]})
	}
	return v, nil
}

const timeFormat = "2006-01-02T15:04:05Z07:00"

// issuerIndex returns the index of the CA certificate that signed cert (-1
// for none).
func issuerIndex(cert *x509.Certificate, cas []*x509.Certificate) int {
	for i, ca := range cas {
		if ca != nil && cert.CheckSignatureFrom(ca) == nil {
			return i
		}
	}
	return -1
}

// RotateClusterCA creates a new CA root for a cluster and starts the
// overlap (see the file comment). Fenced and audited; the cluster's
// snapshots are re-signed with both roots before it answers.
func (a *Authority) RotateClusterCA(ctx context.Context, actor Actor, cluster, idemKey string) (ClusterCAView, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return ClusterCAView{}, err
	}
	op := Op{Action: "cluster.ca.rotate", Actor: actor, ClusterID: c.ID, TargetKind: "cluster", TargetID: c.ID, IdempotencyKey: idemKey}
	if err := requireCARole(actor); err != nil {
		a.auditFailure(ctx, op, err)
		return ClusterCAView{}, err
	}
	ca, ok := a.state.ClusterCA(c.ID)
	if !ok {
		return ClusterCAView{}, Errf(CodeNotFound, "cluster %s has no CA on this authority", c.Slug)
	}
	if _, err := a.ensureLeader(); err != nil {
		return ClusterCAView{}, err
	}
	reqID := ""
	if idemKey != "" {
		reqID = "ca.rotate|" + actor.ID + "|" + c.ID + "|" + idemKey
	}
	retry := false
	if reqID != "" {
		if res, ok := a.state.Remembered(reqID); ok && res.Err == nil {
			retry = true // Raft committed on the first attempt; only record it
		}
	}
	if !retry {
		if ca.InOverlap() {
			e := Errf(CodeCARotationInProgress, "cluster %s is already rotating its CA (old root %s still trusted); retire it first", c.Slug, ca.Publishing().KeyID)
			a.auditFailure(ctx, op, e)
			return ClusterCAView{}, e
		}
		now := a.cfg.Clock()
		priv, der, err := pki.NewCA(a.cfg.Rand, c.ID, now, a.cfg.CALifetime)
		if err != nil {
			return ClusterCAView{}, &Error{Code: CodeInternal, Message: "could not create the new cluster CA", Err: err}
		}
		pub := priv.Public().(ed25519.PublicKey)
		kid := keyID(pub)
		sealed, err := a.cfg.Sealer.Seal(priv, fsm.CAKeyAAD(c.ID, kid))
		if err != nil {
			return ClusterCAView{}, &Error{Code: CodeInternal, Message: "could not seal the new cluster CA key", Err: err}
		}
		res, err := a.apply(ctx, reqID, fsm.RotateClusterCA{ClusterID: c.ID, KeyID: kid, PublicKey: pub, SealedPrivateKey: sealed, CertDER: der, At: now})
		if err != nil && !errors.Is(res.Err, fsm.ErrRequestIDConflict) {
			return ClusterCAView{}, err
		}
	}
	ca, _ = a.state.ClusterCA(c.ID)
	op.Details = map[string]any{"new_key_id": ca.Current.KeyID, "old_key_id": ca.Publishing().KeyID}
	if _, err := Fenced(ctx, a, op, func(tx pgx.Tx) (bool, error) { return true, nil }); err != nil {
		return ClusterCAView{}, err
	}
	a.afterCAChange(ctx, c.ID)
	return a.clusterCAView(ctx, c.ID)
}

// RetireClusterCA retires the old root of a rotation in its overlap. It
// refuses with ca_retire_unsafe while active nodes hold certificates of the
// old root, unless req.Force. Fenced and audited; snapshots are re-signed
// by the new root and new join tokens pin it.
func (a *Authority) RetireClusterCA(ctx context.Context, actor Actor, cluster string, req RetireCARequest, idemKey string) (ClusterCAView, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return ClusterCAView{}, err
	}
	op := Op{Action: "cluster.ca.retire", Actor: actor, ClusterID: c.ID, TargetKind: "cluster", TargetID: c.ID, IdempotencyKey: idemKey,
		Details: map[string]any{"force": req.Force}}
	if err := requireCARole(actor); err != nil {
		a.auditFailure(ctx, op, err)
		return ClusterCAView{}, err
	}
	ca, ok := a.state.ClusterCA(c.ID)
	if !ok {
		return ClusterCAView{}, Errf(CodeNotFound, "cluster %s has no CA on this authority", c.Slug)
	}
	if _, err := a.ensureLeader(); err != nil {
		return ClusterCAView{}, err
	}
	reqID := ""
	if idemKey != "" {
		reqID = "ca.retire|" + actor.ID + "|" + c.ID + "|" + idemKey
	}
	retry := false
	if reqID != "" {
		if res, ok := a.state.Remembered(reqID); ok && res.Err == nil {
			retry = true
		}
	}
	if !retry {
		if !ca.InOverlap() {
			e := Errf(CodeCANoRotation, "cluster %s has no CA rotation to finish (rotate first)", c.Slug)
			a.auditFailure(ctx, op, e)
			return ClusterCAView{}, e
		}
		old := ca.Publishing()
		op.Details["key_id"] = old.KeyID
		v, err := a.clusterCAView(ctx, c.ID)
		if err != nil {
			return ClusterCAView{}, err
		}
		if n := len(v.NodesOnOldRoots); n > 0 && !req.Force {
			e := Errf(CodeCARetireUnsafe, "%d active node(s) still hold a certificate of the old root %s; wait for them to renew or retire with force", n, old.KeyID)
			e.Details = map[string]any{"nodes": v.NodesOnOldRoots}
			a.auditFailure(ctx, op, e)
			return ClusterCAView{}, e
		}
		if _, err := a.apply(ctx, reqID, fsm.RetireClusterCA{ClusterID: c.ID, KeyID: old.KeyID, At: a.cfg.Clock()}); err != nil {
			return ClusterCAView{}, err
		}
	}
	ca, _ = a.state.ClusterCA(c.ID)
	cur := ca.Publishing()
	op.Details["new_key_id"] = cur.KeyID
	if _, err := Fenced(ctx, a, op, func(tx pgx.Tx) (store.Cluster, error) {
		return store.SetClusterCA(ctx, tx, c.ID, cur.KeyID, cur.CertDER)
	}); err != nil {
		return ClusterCAView{}, err
	}
	a.afterCAChange(ctx, c.ID)
	return a.clusterCAView(ctx, c.ID)
}

// afterCAChange re-signs the cluster's snapshots (their ca_roots and
// possibly their signing key changed) and drops cached authentications of
// retired roots.
func (a *Authority) afterCAChange(ctx context.Context, clusterID string) {
	if _, err := a.rebuild(ctx, clusterID, false); err != nil {
		a.log.Warn("snapshot rebuild after a CA change failed; the rebuild loop retries", "cluster_id", clusterID, "error", err)
	}
	a.snapshots.kickLoop()
	if a.heartbeats != nil {
		a.heartbeats.dropRetiredAuth()
	}
}

// caRoots returns the roots a cluster's snapshots carry: every trusted key,
// the current one active.
func (a *Authority) caRoots(clusterID string) []snapshot.CARoot {
	ca, ok := a.state.ClusterCA(clusterID)
	if !ok {
		return nil
	}
	var out []snapshot.CARoot
	for _, k := range ca.Trusted() {
		st := snapshot.CARootPrevious
		if k.KeyID == ca.Current.KeyID {
			st = snapshot.CARootActive
		}
		out = append(out, snapshot.CARoot{KeyID: k.KeyID, Status: st, Certificate: k.CertDER})
	}
	return out
}

// verifyNodeCertRoots checks a node certificate against the cluster's CA
// keys: nil when a trusted root issued it, ca_retired when only a retired
// root did, unauthenticated otherwise. It returns the issuing key id.
func (a *Authority) verifyNodeCertRoots(cert *x509.Certificate, clusterID string) (string, error) {
	ca, ok := a.state.ClusterCA(clusterID)
	if !ok {
		return "", Errf(CodeUnauthorized, "unknown cluster")
	}
	now, sum := a.cfg.Clock(), certSum(cert)
	for _, k := range append([]fsm.CAKey{ca.Current}, ca.History...) {
		if !a.chains.verify(cert, sum, clusterID, k.KeyID, k.CertDER, now, func() error {
			_, err := pki.VerifyNodeCert(cert, k.CertDER, clusterID, now)
			return err
		}) {
			continue
		}
		if k.Status == fsm.CAKeyRetired {
			return k.KeyID, Errf(CodeCARetired, "the node certificate was issued by the retired cluster CA root %s; the node must re-enroll", k.KeyID)
		}
		return k.KeyID, nil
	}
	return "", Errf(CodeUnauthorized, "node certificate does not verify (expired or not issued by the cluster CA)")
}

// requireCARole admits the platform owner role only (like partition
// actions): a CA rotation decides what every node of a cluster trusts.
func requireCARole(actor Actor) *Error {
	if actor.Kind == "system" || actor.Role == store.RolePlatformOwner {
		return nil
	}
	return &Error{Code: CodeForbidden, Message: "cluster CA rotation and retirement are for platform owners only",
		Details: map[string]any{"role": actor.Role}}
}
