package snapshot

import (
	"cmp"
	"fmt"
	"slices"
)

// OrgAccess is, for one organization whose published endpoints this node
// backs, what the node needs to serve them (spec C9, need-to-know): those
// endpoints only, the organization's resources reached through them or named
// by its policies, and the policies that use them. A node backing none of an
// organization's endpoints learns nothing of that organization's access
// configuration.
type OrgAccess struct {
	OrganizationID string           `json:"organization_id"`
	Endpoints      []OrgEndpointRef `json:"endpoints"`
	Resources      []OrgResourceRef `json:"resources,omitempty"`
	Policies       []OrgPolicyRef   `json:"policies,omitempty"`
}

// OrgEndpointRef is a published endpoint this node backs.
type OrgEndpointRef struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Protocol string `json:"protocol"`
}

// OrgResourceRef is an organization resource the node may have to reach.
type OrgResourceRef struct {
	ID         string `json:"id"`
	Protocol   string `json:"protocol"`
	Address    string `json:"address"`
	Port       int    `json:"port"`
	EndpointID string `json:"endpoint_id"`
}

// OrgPolicyRef is an organization access policy that uses an endpoint the
// node backs.
type OrgPolicyRef struct {
	ID          string   `json:"id"`
	Subjects    []string `json:"subjects"`
	ResourceIDs []string `json:"resource_ids"`
	EndpointIDs []string `json:"endpoint_ids"`
	// WindowStart and WindowEnd are minutes of the UTC day; both -1: always.
	WindowStart int  `json:"window_start"`
	WindowEnd   int  `json:"window_end"`
	RequireMFA  bool `json:"require_mfa"`
}

// OrgEndpoint is a published endpoint with the nodes of this cluster that
// back it (State input).
type OrgEndpoint struct {
	ID             string
	OrganizationID string
	Name           string
	Kind           string
	Protocol       string
	NodeIDs        []string
}

// OrgResource is an organization resource (State input).
type OrgResource struct {
	ID             string
	OrganizationID string
	Protocol       string
	Address        string
	Port           int
	EndpointID     string
}

// OrgPolicy is an organization access policy (State input).
type OrgPolicy struct {
	ID             string
	OrganizationID string
	Subjects       []string
	ResourceIDs    []string
	EndpointIDs    []string
	WindowStart    int
	WindowEnd      int
	RequireMFA     bool
}

// indexOrgAccess computes each node's OrgAccess sections.
func indexOrgAccess(state *State) (map[string][]OrgAccess, error) {
	out := map[string][]OrgAccess{}
	if len(state.OrgEndpoints) == 0 {
		return out, nil
	}
	endpoints := map[string]*OrgEndpoint{}
	for i := range state.OrgEndpoints {
		e := &state.OrgEndpoints[i]
		if e.ID == "" || e.OrganizationID == "" {
			return nil, fmt.Errorf("%w: organization endpoint without id or organization", ErrInvalidState)
		}
		endpoints[e.ID] = e
	}
	// served[node][org] = endpoint ids of org the node backs
	served := map[string]map[string][]string{}
	for _, e := range state.OrgEndpoints {
		for _, n := range e.NodeIDs {
			if served[n] == nil {
				served[n] = map[string][]string{}
			}
			served[n][e.OrganizationID] = append(served[n][e.OrganizationID], e.ID)
		}
	}
	for node, orgs := range served {
		for org, eids := range orgs {
			slices.Sort(eids)
			eids = slices.Compact(eids)
			acc := OrgAccess{OrganizationID: org}
			for _, id := range eids {
				e := endpoints[id]
				acc.Endpoints = append(acc.Endpoints, OrgEndpointRef{ID: e.ID, Name: e.Name, Kind: e.Kind, Protocol: e.Protocol})
			}
			want := map[string]bool{}
			for _, p := range state.OrgPolicies {
				if p.OrganizationID != org || !slices.ContainsFunc(p.EndpointIDs, func(id string) bool { return slices.Contains(eids, id) }) {
					continue
				}
				acc.Policies = append(acc.Policies, OrgPolicyRef{ID: p.ID, Subjects: sortedCopy(p.Subjects), ResourceIDs: sortedCopy(p.ResourceIDs),
					EndpointIDs: sortedCopy(p.EndpointIDs), WindowStart: p.WindowStart, WindowEnd: p.WindowEnd, RequireMFA: p.RequireMFA})
				for _, r := range p.ResourceIDs {
					want[r] = true
				}
			}
			for _, r := range state.OrgResources {
				if r.OrganizationID == org && (want[r.ID] || slices.Contains(eids, r.EndpointID)) {
					acc.Resources = append(acc.Resources, OrgResourceRef{ID: r.ID, Protocol: r.Protocol, Address: r.Address, Port: r.Port, EndpointID: r.EndpointID})
				}
			}
			slices.SortFunc(acc.Resources, func(a, c OrgResourceRef) int { return cmp.Compare(a.ID, c.ID) })
			slices.SortFunc(acc.Policies, func(a, c OrgPolicyRef) int { return cmp.Compare(a.ID, c.ID) })
			out[node] = append(out[node], acc)
		}
		slices.SortFunc(out[node], func(a, c OrgAccess) int { return cmp.Compare(a.OrganizationID, c.OrganizationID) })
	}
	return out, nil
}
