package snapshot

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand"
	"time"

	"github.com/rap-fabric/core/domain"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testKey(seed byte) ed25519.PrivateKey {
	var s [32]byte
	for i := range s {
		s[i] = seed
	}
	return ed25519.NewKeyFromSeed(s[:])
}

func opts(v uint64) BuildOptions {
	return BuildOptions{Version: v, Epoch: 3, IssuedAt: t0, TTL: time.Hour}
}

var serviceRoles = []domain.Role{
	domain.RoleRDPWorker, domain.RoleVNCWorker, domain.RoleSSHWorker, domain.RoleRemoteAccess,
	domain.RoleEgressNode, domain.RoleVPNExit, domain.RoleVPNConnector,
}

var otherRoles = []domain.Role{
	domain.RoleFileStorageCache, domain.RoleUpdateCache, domain.RoleVideoRelay, domain.RoleAdminIngress,
}

func orgID(i int) string              { return fmt.Sprintf("org-%02d", i) }
func nodeID(i int) string             { return fmt.Sprintf("n-%05d", i) }
func resID(org, k int) string         { return fmt.Sprintf("res-%02d-%03d", org, k) }
func conID(org, k int) string         { return fmt.Sprintf("con-%02d-%03d", org, k) }
func poolID(org, k int) string        { return fmt.Sprintf("pool-%02d-%02d", org, k) }
func identityKeyOf(id string) []byte  { s := sha256.Sum256([]byte("identity/" + id)); return s[:] }
func secretValue(r *rand.Rand) []byte { return fmt.Appendf(nil, "S3CRET-%016x", r.Uint64()) }

// genState builds a random but realistic cluster "c1" of n nodes and orgs
// organizations. About 10% of nodes are mesh nodes; 3% belong only to
// another cluster; a few are revoked or disabled. Every resource and
// connector has a credential whose value is in State.Secrets.
func genState(r *rand.Rand, n, orgs int) *State {
	regions := []string{"eu-west", "eu-east", "us-east", "ap-south"}
	st := &State{
		Cluster: Cluster{ID: "c1", Name: "cluster one", GossipKeys: []GossipKey{
			{Pool: "", KeyID: "gk-1", Key: []byte("gossip-key-default-0123456789abc")},
			{Pool: "edge", KeyID: "gk-2", Key: []byte("gossip-key-edge-0123456789abcdef")},
		}},
		Groups:      []Group{{ID: "g-root", Name: "root"}, {ID: "g-dc1", ParentID: "g-root", Name: "dc1"}, {ID: "g-dc2", ParentID: "g-root", Name: "dc2"}},
		RoutePolicy: json.RawMessage(`{"max_hops": 4, "prefer_region": true}`),
		QoSPolicy:   json.RawMessage(`{"classes":[{"name":"interactive","priority":1},{"name":"bulk","priority":5}]}`),
		TokenValidation: &TokenValidation{Issuer: "https://auth.example", Audiences: []string{"rap-entry"},
			Keys: []TokenKey{{KeyID: "tk1", Algorithm: "EdDSA", PublicKey: []byte("token-pub-key-1")}}, MaxClockSkewSecs: 30},
		Secrets: map[string][]byte{},
		Telemetry: []TelemetryFlag{
			{Scope: "cluster", Name: "trace_handshakes", Enabled: true},
			{Scope: "node", TargetID: nodeID(1), Name: "debug", Enabled: true},
		},
	}
	for o := 0; o < orgs; o++ {
		st.Organizations = append(st.Organizations, Organization{ID: orgID(o), Name: fmt.Sprintf("Org %d", o),
			Users: []string{fmt.Sprintf("alice@org%02d.example", o), fmt.Sprintf("bob@org%02d.example", o)}})
		st.EntryPolicies = append(st.EntryPolicies, EntryPolicy{OrganizationID: orgID(o),
			Policy: json.RawMessage(fmt.Sprintf(`{"allow_countries":["DE"],"org_entry":"entry-%02d"}`, o))})
		st.Telemetry = append(st.Telemetry, TelemetryFlag{Scope: "organization", TargetID: orgID(o), Name: "session_trace", Enabled: o%2 == 0})
		for k := 0; k < 20; k++ {
			ref := fmt.Sprintf("vault://%s/res/%d", orgID(o), k)
			st.Secrets[ref] = secretValue(r)
			st.Resources = append(st.Resources, Resource{ID: resID(o, k), OrganizationID: orgID(o), Name: "host",
				Protocol: []string{"rdp", "vnc", "ssh"}[k%3], Address: fmt.Sprintf("10.%d.%d.%d", o, k/250, k%250+1), Port: 3389,
				EgressPoolID: poolID(o, k%2), CredentialRef: ref})
		}
		for k := 0; k < 3; k++ {
			ref := fmt.Sprintf("vault://%s/con/%d", orgID(o), k)
			st.Secrets[ref] = secretValue(r)
			st.Connectors = append(st.Connectors, Connector{ID: conID(o, k), OrganizationID: orgID(o), Type: "ldap",
				Endpoint: fmt.Sprintf("ldaps://dir.org%02d.example", o), CredentialRef: ref})
		}
	}
	st.EntryPolicies = append(st.EntryPolicies, EntryPolicy{Policy: json.RawMessage(`{"default":true}`)})
	st.Secrets["gossip-master"] = secretValue(r)
	pools := map[string]*EgressPool{}
	var storage []string
	for i := 0; i < n; i++ {
		id := nodeID(i)
		key := make([]byte, 32)
		r.Read(key)
		nd := Node{ID: id, Name: "host-" + id, Region: regions[r.Intn(len(regions))],
			Endpoints:      []string{fmt.Sprintf("198.18.%d.%d:51820", i/250, i%250+1)},
			NoisePublicKey: key, IdentityPublicKey: identityKeyOf(id), IdentityStatus: domain.IdentityActive}
		if r.Intn(4) == 0 {
			nd.GossipPool = "edge"
		}
		cluster, status := "c1", domain.MembershipActive
		switch p := r.Intn(100); {
		case p < 3:
			cluster = "c2"
		case p < 5:
			status = domain.MembershipDisabled
		case p < 6:
			nd.IdentityStatus = domain.IdentityRevoked
		}
		nd.Memberships = []NodeMembership{{ClusterID: cluster, Status: status, GroupID: []string{"", "g-dc1", "g-dc2"}[r.Intn(3)]}}
		if r.Intn(10) == 0 && cluster == "c1" { // also in another cluster
			nd.Memberships = append(nd.Memberships, NodeMembership{ClusterID: "c2", Status: domain.MembershipActive, GroupID: "g-other"})
		}
		st.Nodes = append(st.Nodes, nd)
		assign := func(role domain.Role, org string) {
			st.Assignments = append(st.Assignments, RoleAssignment{NodeID: id, Role: role, OrganizationID: org,
				Disabled: r.Intn(30) == 0, Policy: json.RawMessage(`{"max_sessions": 50}`)})
		}
		switch p := r.Intn(100); {
		case p < 10:
			assign([]domain.Role{domain.RoleRelayNode, domain.RoleCoreMesh}[r.Intn(2)], "")
			if r.Intn(3) == 0 {
				assign(domain.RoleEntryNode, "")
			}
		case p < 20:
			org := ""
			if r.Intn(2) == 0 {
				org = orgID(r.Intn(orgs))
			}
			assign(domain.RoleEntryNode, org)
		case p < 24:
			assign(domain.RoleConfigStorage, "")
			storage = append(storage, id)
		case p < 28:
			assign(otherRoles[r.Intn(len(otherRoles))], "")
		case p < 30:
			// no roles at all
		default:
			for k := 0; k < 1+r.Intn(2); k++ {
				role := serviceRoles[r.Intn(len(serviceRoles))]
				org := ""
				if r.Intn(3) > 0 {
					org = orgID(r.Intn(orgs))
				}
				assign(role, org)
				for s := 0; s < 1+r.Intn(3); s++ {
					so := r.Intn(orgs)
					svc := ServiceState{ID: fmt.Sprintf("svc-%s-%d-%d", id, k, s), NodeID: id, Type: string(role),
						OrganizationID: orgID(so), Enabled: r.Intn(10) > 0,
						Config: json.RawMessage(fmt.Sprintf(`{"listen": ":%d", "password_ref": "vault://%s/svc"}`, 4000+s, orgID(so)))}
					for q := 0; q < 1+r.Intn(4); q++ {
						svc.ResourceRefs = append(svc.ResourceRefs, resID(so, r.Intn(20)))
					}
					if r.Intn(10) == 0 { // a mis-configured cross-organization reference
						svc.ResourceRefs = append(svc.ResourceRefs, resID((so+1)%orgs, r.Intn(20)))
					}
					svc.ConnectorRefs = append(svc.ConnectorRefs, conID(so, r.Intn(3)))
					st.Services = append(st.Services, svc)
					if role == domain.RoleEgressNode || role == domain.RoleVPNExit {
						pid := poolID(so, r.Intn(2))
						if pools[pid] == nil {
							pools[pid] = &EgressPool{ID: pid, OrganizationID: orgID(so), Name: "exit " + pid}
						}
						pools[pid].NodeIDs = append(pools[pid].NodeIDs, id)
					}
				}
			}
		}
	}
	for _, p := range pools {
		st.EgressPools = append(st.EgressPools, *p)
	}
	// deterministic order for the pools (map iteration above)
	sortPools(st.EgressPools)
	for _, s := range storage {
		sa := StorageAssignment{StorageNodeID: s}
		for k := 0; k < 50; k++ {
			sa.NodeIDs = append(sa.NodeIDs, nodeID(r.Intn(n)))
		}
		st.StorageAssignments = append(st.StorageAssignments, sa)
	}
	for k := 0; k < 3; k++ {
		st.Revocations.KeyFingerprints = append(st.Revocations.KeyFingerprints, Fingerprint(fmt.Appendf(nil, "old-key-%d", k)))
	}
	return st
}

func sortPools(p []EgressPool) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j].ID < p[j-1].ID; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}
