package runtime

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rap-fabric/core/agent/facts"
	"github.com/rap-fabric/core/agent/identity"
	"github.com/rap-fabric/core/agent/state"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/domain"
)

// EnrollOptions configure Enroll.
type EnrollOptions struct {
	// Authorities are authority API addresses (host:port).
	Authorities []string
	// Token is the join token (rapjt.<id>.<secret>).
	Token string
	// CAPin is the cluster CA pin ("sha256:<hex>") printed with the token.
	CAPin string
	// Name is the node name; "" means the host name.
	Name string
	// Capabilities are configured capabilities (added to the detected ones).
	Capabilities []domain.Capability
	// Roles are the roles the join request asks for.
	Roles []domain.Role
	// MachineIDPath is read for the host fingerprint; "" means /etc/machine-id.
	MachineIDPath string
	// PollInterval is the wait between polls for the outcome; 0 means 2 s.
	PollInterval time.Duration
	// Progress receives the progress line; nil means io.Discard.
	Progress io.Writer
	// AgentVersion is reported in the facts.
	AgentVersion string
	// Gather replaces fact gathering (tests); nil means facts.Gather.
	Gather func(facts.Options) (facts.Facts, error)
	// Rand is the key randomness; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// EnrollResult is a completed enrollment.
type EnrollResult struct {
	ClusterID string `json:"cluster_id"`
	NodeID    string `json:"node_id"`
	RequestID string `json:"request_id"`
	Serial    string `json:"certificate_serial"`
	NotAfter  time.Time
}

// Enroll joins the cluster behind opts.CAPin: it generates the identity and
// Noise keys locally, sends the join request (verifying the authority by the
// pin), waits with a progress line until the request is approved, rejected or
// expired, and stores identity, certificate, CA and membership in the
// cluster's own namespace of st. An interrupted enrollment resumes with the
// same keys and request; an enrolled cluster is never enrolled again
// (ErrAlreadyEnrolled).
func Enroll(ctx context.Context, st *state.Store, o EnrollOptions) (EnrollResult, error) {
	if len(o.Authorities) == 0 || o.Token == "" || o.CAPin == "" {
		return EnrollResult{}, fmt.Errorf("%w: --authority, --token and --ca-pin are required", ErrInvalidOptions)
	}
	pinDigest, err := identity.ParsePin(o.CAPin)
	if err != nil {
		return EnrollResult{}, err
	}
	o.CAPin = "sha256:" + hex.EncodeToString(pinDigest)
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Gather == nil {
		o.Gather = facts.Gather
	}

	// Resume or refuse when this pin's cluster is already in the state.
	var keys *identity.Keys
	var st0 joinStatus
	clusters, err := st.Memberships()
	if err != nil {
		return EnrollResult{}, err
	}
	for _, c := range clusters {
		id, err := st.Identity(c)
		if err != nil || id.CAPin != o.CAPin {
			continue
		}
		m, _ := st.Membership(c)
		if id.CertificatePEM != "" {
			return EnrollResult{}, fmt.Errorf("%w: cluster %s, node %s (state %s)", ErrAlreadyEnrolled, c, id.NodeID, st.Path())
		}
		if keys, err = identity.LoadKeys(id.SigningKey, id.NoiseKey); err != nil {
			return EnrollResult{}, err
		}
		st0 = joinStatus{RequestID: m.JoinRequestID, ClusterID: c, Status: "pending"}
		fmt.Fprintf(o.Progress, "resuming join request %s for cluster %s\n", m.JoinRequestID, c)
	}

	client, err := apiclient.New(apiclient.Options{Servers: o.Authorities, CAPin: o.CAPin, ServerName: serverNameForPin(o.CAPin), Timeout: 10 * time.Second})
	if err != nil {
		return EnrollResult{}, err
	}
	defer client.Close()

	if keys == nil {
		if keys, err = identity.GenerateKeys(o.Rand); err != nil {
			return EnrollResult{}, err
		}
		name := o.Name
		if name == "" {
			if name, err = os.Hostname(); err != nil || name == "" {
				name = "node"
			}
		}
		f, err := o.Gather(facts.Options{AgentVersion: o.AgentVersion, Configured: o.Capabilities})
		if err != nil {
			return EnrollResult{}, err
		}
		factsJSON, err := json.Marshal(f)
		if err != nil {
			return EnrollResult{}, err
		}
		host, err := HostFingerprint(o.MachineIDPath, filepath.Dir(st.Path()))
		if err != nil {
			return EnrollResult{}, err
		}
		req := joinRequest{Token: o.Token, NodeName: name, HostFingerprint: host, PublicKey: keys.SigningPublic(), NoisePublicKey: keys.NoisePublic(),
			Facts: factsJSON, Capabilities: nonNilCaps(f.Capabilities), RequestedRoles: o.Roles, PollSecret: pollSecret(keys)}
		if err := client.Do(ctx, http.MethodPost, pathJoin, req, &st0, nil); err != nil {
			return EnrollResult{}, fmt.Errorf("join request: %w", err)
		}
		if st0.ClusterID == "" || st0.RequestID == "" {
			return EnrollResult{}, fmt.Errorf("%w: join answer lacks cluster or request id", ErrBadEnrollment)
		}
		// Keep the keys and the request before waiting, so an interrupted
		// enrollment resumes instead of sending a second request.
		if err := st.PutIdentity(st0.ClusterID, state.Identity{ClusterID: st0.ClusterID, SigningKey: keys.Signing, NoiseKey: keys.NoisePrivateBytes(),
			CAPin: o.CAPin, AuthorityURLs: o.Authorities}); err != nil {
			return EnrollResult{}, err
		}
		if err := st.PutMembership(st0.ClusterID, state.Membership{ClusterID: st0.ClusterID, Status: "pending", JoinRequestID: st0.RequestID}); err != nil {
			return EnrollResult{}, err
		}
		fmt.Fprintf(o.Progress, "join request %s sent to cluster %s as %q; an owner must approve it\n", st0.RequestID, st0.ClusterID, name)
	}

	start := o.Now()
	for st0.Status == "pending" || st0.Status == "auto_approve" || st0.Certificate == nil && st0.Status == "approved" {
		fmt.Fprintf(o.Progress, "\rwaiting for approval of join request %s … %s ", st0.RequestID, o.Now().Sub(start).Truncate(time.Second))
		select {
		case <-ctx.Done():
			fmt.Fprintln(o.Progress)
			return EnrollResult{}, ctx.Err()
		case <-time.After(o.PollInterval):
		}
		var next joinStatus
		if err := client.Do(ctx, http.MethodPost, agentapi.JoinPollPath(st0.RequestID), agentapi.JoinPoll{PollSecret: pollSecret(keys)}, &next, nil); err != nil {
			var ae *apiclient.Error
			if errors.As(err, &ae) && ae.Code == "not_found" {
				return EnrollResult{}, fmt.Errorf("%w: the authority no longer knows request %s", ErrExpired, st0.RequestID)
			}
			fmt.Fprintf(o.Progress, "\rauthority not answering (%v); retrying ", shortErr(err))
			continue
		}
		next.RequestID = st0.RequestID
		st0 = next
	}
	fmt.Fprintln(o.Progress)
	switch st0.Status {
	case "approved":
	case "rejected":
		_ = st.DeleteMembership(st0.ClusterID)
		return EnrollResult{}, fmt.Errorf("%w: %s", ErrRejected, st0.Reason)
	default:
		_ = st.DeleteMembership(st0.ClusterID)
		return EnrollResult{}, fmt.Errorf("%w (status %s)", ErrExpired, st0.Status)
	}
	return finishEnroll(st, o, keys, pinDigest, st0)
}

func finishEnroll(st *state.Store, o EnrollOptions, keys *identity.Keys, pinDigest []byte, js joinStatus) (EnrollResult, error) {
	ca, err := x509.ParseCertificate(js.CACert)
	if err != nil || !identity.MatchesPin(ca, pinDigest) {
		return EnrollResult{}, fmt.Errorf("%w: CA certificate does not match the pin", ErrBadEnrollment)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: js.Certificate})
	cert, err := identity.VerifyNodeCertificate(certPEM, identity.NodeCertOptions{CA: ca, ClusterID: js.ClusterID, NodeID: js.NodeID, PublicKey: keys.SigningPublic(), Now: o.Now()})
	if err != nil {
		return EnrollResult{}, fmt.Errorf("%w: %w", ErrBadEnrollment, err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: js.CACert})
	id, err := st.Identity(js.ClusterID)
	if err != nil {
		return EnrollResult{}, err
	}
	id.NodeID, id.CertificatePEM, id.CAPEM = js.NodeID, string(certPEM), string(caPEM)
	if err := st.PutIdentity(js.ClusterID, id); err != nil {
		return EnrollResult{}, err
	}
	if err := st.PutMembership(js.ClusterID, state.Membership{ClusterID: js.ClusterID, NodeID: js.NodeID, Status: domain.MembershipActive,
		JoinRequestID: js.RequestID, JoinedAt: o.Now().UTC()}); err != nil {
		return EnrollResult{}, err
	}
	if err := st.PutPartition(js.ClusterID, state.PartitionInfo{Mode: state.ModeNormal}); err != nil {
		return EnrollResult{}, err
	}
	return EnrollResult{ClusterID: js.ClusterID, NodeID: js.NodeID, RequestID: js.RequestID, Serial: cert.SerialNumber.Text(16), NotAfter: cert.NotAfter}, nil
}

// pollSecret derives the join poll secret from the identity key, so a resumed
// enrollment can poll the same request after a restart.
func pollSecret(k *identity.Keys) []byte {
	s := sha256.Sum256(append([]byte("rap-join-poll-secret-v1\x00"), k.Signing.Seed()...))
	return s[:]
}

// HostFingerprint is the sha256 (hex) of the machine id at machineIDPath
// (default /etc/machine-id). Without one, a random id is created once in
// stateDir/host-id (mode 0600) and used instead.
func HostFingerprint(machineIDPath, stateDir string) (string, error) {
	if machineIDPath == "" {
		machineIDPath = "/etc/machine-id"
	}
	if b, err := os.ReadFile(machineIDPath); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		sum := sha256.Sum256([]byte(strings.TrimSpace(string(b))))
		return hex.EncodeToString(sum[:]), nil
	}
	p := filepath.Join(stateDir, "host-id")
	b, err := os.ReadFile(p)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		var r [32]byte
		if _, err := rand.Read(r[:]); err != nil {
			return "", err
		}
		b = []byte(hex.EncodeToString(r[:]))
		if err := os.MkdirAll(stateDir, 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return "", fmt.Errorf("host id: %w", err)
		}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(string(b))))
	return hex.EncodeToString(sum[:]), nil
}

func nonNilCaps(c []domain.Capability) []domain.Capability {
	if c == nil {
		return []domain.Capability{}
	}
	return c
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}
