package authority

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
)

// ---------------------------------------------------------------- organizations

// CreateOrganizationRequest is the input of CreateOrganization.
type CreateOrganizationRequest struct {
	Name string `json:"name"`
	Slug string `json:"slug"`
}

// CreateOrganization creates an organization (fenced, audited).
func (a *Authority) CreateOrganization(ctx context.Context, actor Actor, req CreateOrganizationRequest, idemKey string) (store.Organization, error) {
	req.Name = strings.TrimSpace(req.Name)
	if req.Slug == "" {
		req.Slug = strings.ToLower(strings.ReplaceAll(req.Name, " ", "-"))
	}
	if req.Name == "" || len(req.Name) > 200 {
		return store.Organization{}, Errf(CodeInvalid, "name must be 1 to 200 characters")
	}
	if !slugRE.MatchString(req.Slug) {
		return store.Organization{}, Errf(CodeInvalid, "slug must match %s", slugRE.String())
	}
	id := store.NewID()
	return Fenced(ctx, a, Op{Action: "organization.create", Actor: actor, TargetKind: "organization", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"name": req.Name, "slug": req.Slug}},
		func(tx pgx.Tx) (store.Organization, error) {
			o, err := store.InsertOrganization(ctx, tx, store.Organization{ID: id, Name: req.Name, Slug: req.Slug})
			if errors.Is(err, store.ErrConflict) {
				return o, Errf(CodeConflict, "an organization with this name or slug exists")
			}
			return o, err
		})
}

// ListOrganizations lists organizations.
func (a *Authority) ListOrganizations(ctx context.Context, p store.Page) ([]store.Organization, error) {
	out, err := store.ListOrganizations(ctx, a.db.Pool, p)
	return out, asErrorOrNil(err)
}

func (a *Authority) organizationID(ctx context.Context, idOrSlug string) (*string, error) {
	if idOrSlug == "" {
		return nil, nil
	}
	o, err := store.GetOrganization(ctx, a.db.Pool, idOrSlug)
	if err != nil {
		return nil, Errf(CodeNotFound, "no organization %q", idOrSlug)
	}
	return &o.ID, nil
}

// ---------------------------------------------------------------- roles

// AssignRoleRequest assigns a cluster-scoped role to a node, optionally
// restricted to one organization, with a policy document (a JSON object;
// credentials only by *_ref).
type AssignRoleRequest struct {
	Role         domain.Role     `json:"role"`
	Organization string          `json:"organization,omitempty"`
	Policy       json.RawMessage `json:"policy,omitempty"`
}

// RoleView is a role assignment with the node's snapshot version after the
// change.
type RoleView struct {
	store.RoleAssignment
	SnapshotVersion uint64 `json:"snapshot_version"`
}

// capabilityCheck refuses a role the node's reported capabilities do not
// allow: capabilities are an upper bound, never a permission.
func (a *Authority) capabilityCheck(ctx context.Context, q store.Querier, nodeID string, role domain.Role) error {
	caps, err := store.ReportedCapabilities(ctx, q, nodeID)
	if err != nil {
		return err
	}
	if missing := domain.MissingCapabilities(role, caps); len(missing) > 0 {
		return &Error{Code: CodeInvalid, Message: "the node does not report the capabilities role " + string(role) + " needs",
			Details: map[string]any{"role": role, "missing_capabilities": missing, "reported_capabilities": nonNil(caps)}}
	}
	return nil
}

// AssignRole assigns a role to a node in a cluster (fenced, audited). It is
// refused (invalid_argument, details.missing_capabilities) when the node does
// not report what the role needs, and when the node has no active membership.
// The node's snapshot (and its peers', for mesh roles) is rebuilt before the
// call returns.
func (a *Authority) AssignRole(ctx context.Context, actor Actor, cluster, nodeID string, req AssignRoleRequest, idemKey string) (RoleView, error) {
	if !req.Role.Valid() {
		return RoleView{}, Errf(CodeInvalid, "unknown role %q", req.Role)
	}
	policy, err := checkDocument("policy", req.Policy, false)
	if err != nil {
		return RoleView{}, err
	}
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return RoleView{}, err
	}
	org, err := a.organizationID(ctx, req.Organization)
	if err != nil {
		return RoleView{}, err
	}
	details := map[string]any{"role": req.Role, "organization": req.Organization}
	r, err := Fenced(ctx, a, Op{Action: "role.assign", Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: nodeID, IdempotencyKey: idemKey, Details: details},
		func(tx pgx.Tx) (store.RoleAssignment, error) {
			m, err := store.GetMembership(ctx, tx, c.ID, nodeID)
			if errors.Is(err, store.ErrNotFound) {
				return store.RoleAssignment{}, Errf(CodeNotFound, "node %s is not a member of cluster %s", nodeID, c.Slug)
			}
			if err != nil {
				return store.RoleAssignment{}, err
			}
			if m.Status != string(domain.MembershipActive) {
				return store.RoleAssignment{}, Errf(CodeConflict, "the node's membership in this cluster is %s", m.Status)
			}
			if err := a.capabilityCheck(ctx, tx, nodeID, req.Role); err != nil {
				return store.RoleAssignment{}, err
			}
			r, err := store.InsertRoleAssignment(ctx, tx, store.RoleAssignment{ID: store.NewID(), ClusterID: c.ID, NodeID: nodeID, Role: string(req.Role),
				OrganizationID: org, Policy: policy, AssignedBy: actor.ID})
			if errors.Is(err, store.ErrConflict) {
				return r, Errf(CodeConflict, "the node already holds role %s for this organization scope; enable or remove that assignment", req.Role)
			}
			return r, err
		})
	if err != nil {
		return RoleView{}, err
	}
	a.afterChange(ctx, c.ID)
	return RoleView{RoleAssignment: r, SnapshotVersion: a.snapshotVersion(ctx, c.ID, nodeID)}, nil
}

func (a *Authority) clusterRole(ctx context.Context, cluster, id string) (ClusterView, store.RoleAssignment, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return c, store.RoleAssignment{}, err
	}
	r, err := store.GetRoleAssignment(ctx, a.db.Pool, id)
	if err != nil || r.ClusterID != c.ID {
		return c, r, Errf(CodeNotFound, "no role assignment %s in cluster %s", id, c.Slug)
	}
	return c, r, nil
}

// SetRoleStatus enables or disables a role assignment (fenced, audited).
// Enabling checks the capabilities again.
func (a *Authority) SetRoleStatus(ctx context.Context, actor Actor, cluster, id, status, idemKey string) (RoleView, error) {
	if status != "active" && status != "disabled" {
		return RoleView{}, Errf(CodeInvalid, "status must be active or disabled")
	}
	c, cur, err := a.clusterRole(ctx, cluster, id)
	if err != nil {
		return RoleView{}, err
	}
	action := "role.disable"
	if status == "active" {
		action = "role.enable"
	}
	r, err := Fenced(ctx, a, Op{Action: action, Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: cur.NodeID, IdempotencyKey: idemKey,
		Details: map[string]any{"role": cur.Role, "assignment_id": id}},
		func(tx pgx.Tx) (store.RoleAssignment, error) {
			if status == "active" {
				if err := a.capabilityCheck(ctx, tx, cur.NodeID, domain.Role(cur.Role)); err != nil {
					return store.RoleAssignment{}, err
				}
			}
			return store.SetRoleStatus(ctx, tx, id, status)
		})
	if err != nil {
		return RoleView{}, err
	}
	a.afterChange(ctx, c.ID)
	return RoleView{RoleAssignment: r, SnapshotVersion: a.snapshotVersion(ctx, c.ID, r.NodeID)}, nil
}

// RemoveRole deletes a role assignment (fenced, audited); desired services
// that needed it stop being delivered.
func (a *Authority) RemoveRole(ctx context.Context, actor Actor, cluster, id, idemKey string) (RoleView, error) {
	c, cur, err := a.clusterRole(ctx, cluster, id)
	if err != nil {
		return RoleView{}, err
	}
	_, err = Fenced(ctx, a, Op{Action: "role.remove", Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: cur.NodeID, IdempotencyKey: idemKey,
		Details: map[string]any{"role": cur.Role, "assignment_id": id}},
		func(tx pgx.Tx) (bool, error) { return true, store.DeleteRoleAssignment(ctx, tx, id) })
	if err != nil {
		return RoleView{}, err
	}
	a.afterChange(ctx, c.ID)
	return RoleView{RoleAssignment: cur, SnapshotVersion: a.snapshotVersion(ctx, c.ID, cur.NodeID)}, nil
}

// ListRoles lists a cluster's role assignments, optionally of one node.
func (a *Authority) ListRoles(ctx context.Context, cluster, nodeID string, p store.Page) ([]store.RoleAssignment, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.ListRoleAssignments(ctx, a.db.Pool, c.ID, nodeID, p)
	return out, asErrorOrNil(err)
}
