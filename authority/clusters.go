package authority

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/fsm"
	"github.com/rap-fabric/core/pki"
	"github.com/rap-fabric/core/store"
)

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// CreateClusterRequest is the input of CreateCluster.
type CreateClusterRequest struct {
	Name   string `json:"name"`
	Slug   string `json:"slug"`
	Region string `json:"region"`
}

// ClusterView is a cluster with its CA pin.
type ClusterView struct {
	store.Cluster
	CAPin string `json:"ca_pin"`
}

func keyID(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return hex.EncodeToString(s[:8])
}

// CreateCluster creates a cluster and its own CA. The CA key is generated here,
// sealed, and committed through the Raft log (so every authority holds it and
// no other cluster shares it); then the cluster row is written under the fence.
func (a *Authority) CreateCluster(ctx context.Context, actor Actor, req CreateClusterRequest, idemKey string) (ClusterView, error) {
	req.Name = strings.TrimSpace(req.Name)
	if req.Slug == "" {
		req.Slug = strings.ToLower(strings.ReplaceAll(req.Name, " ", "-"))
	}
	if req.Name == "" || len(req.Name) > 200 {
		return ClusterView{}, Errf(CodeInvalid, "name must be 1 to 200 characters")
	}
	if !slugRE.MatchString(req.Slug) {
		return ClusterView{}, Errf(CodeInvalid, "slug must match %s", slugRE.String())
	}
	if _, err := a.ensureLeader(); err != nil {
		return ClusterView{}, err
	}
	// Without an Idempotency-Key, refuse a taken slug before minting a CA. With
	// one, a retry must reach the stored response, so the unique constraint
	// decides instead.
	if _, err := store.GetCluster(ctx, a.db.Pool, req.Slug); err == nil && idemKey == "" {
		return ClusterView{}, Errf(CodeConflict, "a cluster with slug %q exists", req.Slug)
	}
	reqID := ""
	if idemKey != "" {
		reqID = "cluster.create|" + actor.ID + "|" + idemKey
	}
	// A retry with the same Idempotency-Key reuses the CA its first attempt
	// committed (a new attempt would carry a different key and be refused by
	// the FSM as a conflicting request).
	id, kid, der, found := a.rememberedCA(reqID)
	if !found {
		id = store.NewID()
		now := a.cfg.Clock()
		priv, cert, err := pki.NewCA(a.cfg.Rand, id, now, a.cfg.CALifetime)
		if err != nil {
			return ClusterView{}, &Error{Code: CodeInternal, Message: "could not create the cluster CA", Err: err}
		}
		pub := priv.Public().(ed25519.PublicKey)
		kid, der = keyID(pub), cert
		sealed, err := a.cfg.Sealer.Seal(priv, fsm.CAKeyAAD(id, kid))
		if err != nil {
			return ClusterView{}, &Error{Code: CodeInternal, Message: "could not seal the cluster CA key", Err: err}
		}
		res, err := a.apply(ctx, reqID, fsm.CreateClusterCA{ClusterID: id, KeyID: kid, PublicKey: pub, SealedPrivateKey: sealed, CertDER: der, At: now})
		if err != nil && !errors.Is(res.Err, fsm.ErrRequestIDConflict) {
			return ClusterView{}, err
		}
		if res.Replayed || errors.Is(res.Err, fsm.ErrRequestIDConflict) {
			if id, kid, der, found = a.rememberedCA(reqID); !found {
				return ClusterView{}, Errf(CodeConflict, "a request with this Idempotency-Key is still in flight; retry")
			}
		}
	}
	c, err := Fenced(ctx, a, Op{Action: "cluster.create", Actor: actor, ClusterID: id, TargetKind: "cluster", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"name": req.Name, "slug": req.Slug, "ca_key_id": kid}},
		func(tx pgx.Tx) (store.Cluster, error) {
			return store.InsertCluster(ctx, tx, store.Cluster{ID: id, Name: req.Name, Slug: req.Slug, Region: req.Region, CAKeyID: kid, CACertDER: der})
		})
	if err != nil {
		return ClusterView{}, err
	}
	return a.clusterView(c), nil
}

func (a *Authority) clusterView(c store.Cluster) ClusterView {
	v := ClusterView{Cluster: c}
	if len(c.CACertDER) > 0 {
		v.CAPin, _ = pki.PinDER(c.CACertDER)
	}
	return v
}

// GetCluster returns a cluster by id or slug (a read: any authority answers).
func (a *Authority) GetCluster(ctx context.Context, idOrSlug string) (ClusterView, error) {
	c, err := store.GetCluster(ctx, a.db.Pool, idOrSlug)
	if err != nil {
		return ClusterView{}, asError(err)
	}
	return a.clusterView(c), nil
}

// ListClusters lists clusters.
func (a *Authority) ListClusters(ctx context.Context, p store.Page) ([]ClusterView, error) {
	cs, err := store.ListClusters(ctx, a.db.Pool, p)
	if err != nil {
		return nil, asError(err)
	}
	out := make([]ClusterView, 0, len(cs))
	for _, c := range cs {
		out = append(out, a.clusterView(c))
	}
	return out, nil
}

// SetClusterStatus enables or disables a cluster (fenced; a disabled cluster
// accepts no join requests).
func (a *Authority) SetClusterStatus(ctx context.Context, actor Actor, idOrSlug, status, idemKey string) (ClusterView, error) {
	if status != "active" && status != "disabled" {
		return ClusterView{}, Errf(CodeInvalid, "status must be active or disabled")
	}
	cur, err := a.GetCluster(ctx, idOrSlug)
	if err != nil {
		return ClusterView{}, err
	}
	c, err := Fenced(ctx, a, Op{Action: "cluster." + map[string]string{"active": "enable", "disabled": "disable"}[status], Actor: actor, ClusterID: cur.ID, TargetKind: "cluster", TargetID: cur.ID, IdempotencyKey: idemKey},
		func(tx pgx.Tx) (store.Cluster, error) { return store.SetClusterStatus(ctx, tx, cur.ID, status) })
	if err != nil {
		return ClusterView{}, err
	}
	return a.clusterView(c), nil
}

// caSigner returns the current signing key, certificate and key id of a CA in
// the replicated state: a cluster CA (Ed25519) or the platform CA (ECDSA).
// Opened keys are cached in memory.
func (a *Authority) caSigner(caID string) (crypto.Signer, []byte, string, error) {
	ca, ok := a.state.ClusterCA(caID)
	if !ok {
		return nil, nil, "", Errf(CodeNotFound, "no CA %s on this authority", caID)
	}
	return a.caKeySigner(caID, ca.Current)
}

// publishingSigner returns the key that signs snapshots and TLS server
// certificates: the oldest trusted root (the old one during a rotation's
// overlap, see fsm.ClusterCA.Publishing).
func (a *Authority) publishingSigner(caID string) (crypto.Signer, []byte, string, error) {
	ca, ok := a.state.ClusterCA(caID)
	if !ok {
		return nil, nil, "", Errf(CodeNotFound, "no CA %s on this authority", caID)
	}
	return a.caKeySigner(caID, ca.Publishing())
}

// publishingClusterSigner is publishingSigner for an Ed25519 cluster CA.
func (a *Authority) publishingClusterSigner(clusterID string) (ed25519.PrivateKey, []byte, string, error) {
	s, der, kid, err := a.publishingSigner(clusterID)
	if err != nil {
		return nil, nil, "", err
	}
	k, ok := s.(ed25519.PrivateKey)
	if !ok {
		return nil, nil, "", Errf(CodeInternal, "CA %s is not an Ed25519 CA", clusterID)
	}
	return k, der, kid, nil
}

func (a *Authority) caKeySigner(caID string, k fsm.CAKey) (crypto.Signer, []byte, string, error) {
	ck := caID + "|" + k.KeyID
	if v, ok := a.caKeys.Load(ck); ok {
		return v.(crypto.Signer), k.CertDER, k.KeyID, nil
	}
	raw, err := a.cfg.Sealer.Open(k.SealedPrivateKey, fsm.CAKeyAAD(caID, k.KeyID))
	if err != nil {
		return nil, nil, "", &Error{Code: CodeInternal, Message: "cannot open the CA key (wrong or missing key-encryption key?)", Err: err}
	}
	var signer crypto.Signer
	if len(raw) == ed25519.PrivateKeySize {
		signer = ed25519.PrivateKey(raw)
	} else {
		key, err := x509.ParsePKCS8PrivateKey(raw)
		s, ok := key.(crypto.Signer)
		if err != nil || !ok {
			return nil, nil, "", &Error{Code: CodeInternal, Message: "the CA key is not a usable private key", Err: err}
		}
		signer = s
	}
	a.caKeys.Store(ck, signer)
	return signer, k.CertDER, k.KeyID, nil
}

// clusterSigner returns the current Ed25519 CA key, certificate and key id of
// a cluster (cluster CAs also sign snapshots, which needs Ed25519).
func (a *Authority) clusterSigner(clusterID string) (ed25519.PrivateKey, []byte, string, error) {
	s, der, kid, err := a.caSigner(clusterID)
	if err != nil {
		return nil, nil, "", err
	}
	k, ok := s.(ed25519.PrivateKey)
	if !ok {
		return nil, nil, "", Errf(CodeInternal, "CA %s is not an Ed25519 CA", clusterID)
	}
	return k, der, kid, nil
}

// CASigner returns the publishing CA key and certificate of a cluster (or of
// the platform CA), for the API's TLS server certificates, with its key id:
// during a CA rotation's overlap the old root, which every node trusts.
func (a *Authority) CASigner(caID string) (crypto.Signer, []byte, string, error) {
	return a.publishingSigner(caID)
}

// rememberedCA finds the cluster CA that the command with requestID created.
func (a *Authority) rememberedCA(requestID string) (id, kid string, der []byte, ok bool) {
	if requestID == "" {
		return "", "", nil, false
	}
	res, ok := a.state.Remembered(requestID)
	if !ok || res.Err != nil {
		return "", "", nil, false
	}
	for _, cid := range a.state.Clusters() {
		if ca, ok := a.state.ClusterCA(cid); ok && ca.Current.Index == res.Index {
			return cid, ca.Current.KeyID, ca.Current.CertDER, true
		}
	}
	return "", "", nil, false
}

// CreatePlatformCA creates the platform CA (the "platform" entry of the
// replicated CA table), which signs the owner API's server certificates.
func (a *Authority) CreatePlatformCA(ctx context.Context) error {
	const id = "platform"
	if _, ok := a.state.ClusterCA(id); ok {
		return nil
	}
	priv, der, err := pki.NewECDSACA(a.cfg.Rand, id, a.cfg.Clock(), a.cfg.CALifetime)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return err
	}
	raw, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(pub)
	kid := hex.EncodeToString(sum[:8])
	sealed, err := a.cfg.Sealer.Seal(raw, fsm.CAKeyAAD(id, kid))
	if err != nil {
		return err
	}
	_, err = a.apply(ctx, "platform-ca", fsm.CreateClusterCA{ClusterID: id, KeyID: kid, PublicKey: pub, SealedPrivateKey: sealed, CertDER: der, At: a.cfg.Clock()})
	return err
}

// IssueMemberCert issues an authority member certificate (Raft transport) for
// memberID's key under the platform CA. It returns the certificate and the
// platform CA certificate.
func (a *Authority) IssueMemberCert(memberID string, pub ed25519.PublicKey) ([]byte, []byte, error) {
	key, caDER, _, err := a.caSigner("platform")
	if err != nil {
		return nil, nil, err
	}
	der, err := pki.IssueMemberCert(a.cfg.Rand, key, caDER, memberID, pub, a.cfg.Clock(), 5*365*24*time.Hour)
	if err != nil {
		return nil, nil, &Error{Code: CodeInternal, Message: "could not issue the member certificate", Err: err}
	}
	return der, caDER, nil
}
