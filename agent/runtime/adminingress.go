package runtime

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/rap-fabric/core/agent/adminingress"
	"github.com/rap-fabric/core/agentapi"
)

// AdminOptions configure the Cluster Admin Endpoint (agent/adminingress).
type AdminOptions struct {
	// Listen is the TCP address of the endpoint's HTTPS listener; "" runs
	// none. It serves only while every precondition holds.
	Listen string
	// Cluster is the membership it serves; "" means the only one.
	Cluster string
	// CertFile and KeyFile are the listener's certificate and key; empty
	// means the node's identity certificate.
	CertFile, KeyFile string
	// Every is how often the preconditions are checked; 0 means 2 s.
	Every time.Duration
}

// adminSource is a membership as the admin endpoint sees it.
type adminSource struct{ m *member }

func (s adminSource) Observe() adminingress.Observation {
	m := s.m
	var o adminingress.Observation
	m.mu.Lock()
	o.LastHeartbeatAck = m.st.LastHeartbeatAck
	m.mu.Unlock()
	sn := m.sn()
	sn.mu.Lock()
	if c := sn.cur; c != nil {
		o.SnapshotVersion, o.SnapshotExpires = c.Version, c.ExpiresAt
		for _, r := range c.Body.Roles {
			o.SnapshotRoles = append(o.SnapshotRoles, string(r.Role))
		}
	}
	sn.mu.Unlock()
	return o
}

func (s adminSource) Grant(ctx context.Context) (agentapi.AdminIngress, error) {
	s.m.mu.Lock()
	c := s.m.client
	s.m.mu.Unlock()
	var g agentapi.AdminIngress
	err := c.Do(ctx, http.MethodGet, agentapi.PathAdminIngress, nil, &g, nil)
	return g, err
}

func (s adminSource) NodeCertificate() (*tls.Certificate, error) {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cert == nil || m.keys == nil {
		return nil, fmt.Errorf("no node certificate")
	}
	chain := [][]byte{m.cert.Raw}
	if m.ca != nil {
		chain = append(chain, m.ca.Raw)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: m.keys.Signing, Leaf: m.cert}, nil
}

func (s adminSource) Forwarding() adminingress.Forwarding {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	return adminingress.Forwarding{Authorities: slices.Clone(m.id.AuthorityURLs), CAPins: pinsOf(m.id, m.roots), ServerName: serverNameForCluster(m.cluster)}
}

// startAdmin builds the admin endpoint for the configured membership (nil
// when none is configured).
func (a *Agent) startAdmin() (*adminingress.Endpoint, error) {
	o := a.o.Admin
	if o.Listen == "" {
		return nil, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	cluster := o.Cluster
	if cluster == "" {
		if len(a.members) != 1 {
			return nil, fmt.Errorf("--admin-listen: %d memberships: name one with --admin-cluster", len(a.members))
		}
		for c := range a.members {
			cluster = c
		}
	}
	m := a.members[cluster]
	if m == nil {
		return nil, fmt.Errorf("--admin-cluster %s: no such enrolled membership", cluster)
	}
	hb := 3*a.o.Interval + a.o.RequestTimeout
	return adminingress.New(adminSource{m}, adminingress.Options{Listen: o.Listen, CertFile: o.CertFile, KeyFile: o.KeyFile,
		Limits: adminingress.Limits{HeartbeatMaxAge: hb}, RequestTimeout: 2 * a.o.RequestTimeout, Now: a.o.Now, Logger: a.log,
		Every: o.Every})
}

// WriteAdminStatus prints the admin endpoint's state for people.
func writeAdminStatus(w io.Writer, s *adminingress.Status) {
	if s == nil {
		return
	}
	state := "DOWN"
	if s.Serving {
		state = "serving"
	}
	fmt.Fprintf(w, "admin endpoint: %s on https://%s (cluster %s)\n", state, s.Listen, dash(s.ClusterID))
	for _, u := range s.Unmet {
		fmt.Fprintf(w, "  reason: %s\n", u)
	}
}
