package authority

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/store"
)

// Node groups are cluster-scoped inventory folders: they grant nothing, but a
// node's group path is part of its snapshot (membership.group_path), so group
// changes rebuild the snapshots of the nodes below them.

// CreateGroupRequest is the input of CreateGroup.
type CreateGroupRequest struct {
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
}

func checkGroupName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 {
		return "", Errf(CodeInvalid, "group name must be 1 to 200 characters")
	}
	return name, nil
}

func (a *Authority) clusterGroup(ctx context.Context, c ClusterView, id string) (store.Group, error) {
	g, err := store.GroupByID(ctx, a.db.Pool, id)
	if err != nil || g.ClusterID != c.ID {
		return store.Group{}, Errf(CodeNotFound, "no group %s in cluster %s", id, c.Slug)
	}
	return g, nil
}

func groupErr(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return Errf(CodeConflict, "a sibling group with this name exists")
	}
	return err
}

// CreateGroup creates a group in a cluster, under Parent when set (fenced,
// audited).
func (a *Authority) CreateGroup(ctx context.Context, actor Actor, cluster string, req CreateGroupRequest, idemKey string) (store.Group, error) {
	name, err := checkGroupName(req.Name)
	if err != nil {
		return store.Group{}, err
	}
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.Group{}, err
	}
	var parent *string
	if req.Parent != "" {
		p, err := a.clusterGroup(ctx, c, req.Parent)
		if err != nil {
			return store.Group{}, err
		}
		parent = &p.ID
	}
	id := store.NewID()
	g, err := Fenced(ctx, a, Op{Action: "group.create", Actor: actor, ClusterID: c.ID, TargetKind: "group", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"name": name, "parent": req.Parent}},
		func(tx pgx.Tx) (store.Group, error) {
			g, err := store.InsertGroup(ctx, tx, store.Group{ID: id, ClusterID: c.ID, ParentID: parent, Name: name})
			return g, groupErr(err)
		})
	return g, err
}

// RenameGroup renames a group (fenced, audited).
func (a *Authority) RenameGroup(ctx context.Context, actor Actor, cluster, id, name, idemKey string) (store.Group, error) {
	name, err := checkGroupName(name)
	if err != nil {
		return store.Group{}, err
	}
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.Group{}, err
	}
	if _, err := a.clusterGroup(ctx, c, id); err != nil {
		return store.Group{}, err
	}
	g, err := Fenced(ctx, a, Op{Action: "group.rename", Actor: actor, ClusterID: c.ID, TargetKind: "group", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"name": name}},
		func(tx pgx.Tx) (store.Group, error) {
			g, err := store.RenameGroup(ctx, tx, id, name)
			return g, groupErr(err)
		})
	return g, err
}

// MoveGroup places a group under another group of the same cluster, or at the
// root when parent is "" (fenced, audited). Cycles are refused by the
// database.
func (a *Authority) MoveGroup(ctx context.Context, actor Actor, cluster, id, parent, idemKey string) (store.Group, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.Group{}, err
	}
	if _, err := a.clusterGroup(ctx, c, id); err != nil {
		return store.Group{}, err
	}
	var pid *string
	if parent != "" {
		p, err := a.clusterGroup(ctx, c, parent)
		if err != nil {
			return store.Group{}, err
		}
		pid = &p.ID
	}
	g, err := Fenced(ctx, a, Op{Action: "group.move", Actor: actor, ClusterID: c.ID, TargetKind: "group", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"parent": parent}},
		func(tx pgx.Tx) (store.Group, error) {
			g, err := store.MoveGroup(ctx, tx, id, pid)
			return g, groupErr(err)
		})
	if err != nil {
		return g, err
	}
	a.afterChange(ctx, c.ID)
	return g, nil
}

// DeleteGroup deletes an empty group: one with no child groups and no member
// nodes (fenced, audited). A non-empty group is a conflict.
func (a *Authority) DeleteGroup(ctx context.Context, actor Actor, cluster, id, idemKey string) (store.Group, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.Group{}, err
	}
	g, err := a.clusterGroup(ctx, c, id)
	if err != nil {
		return store.Group{}, err
	}
	_, err = Fenced(ctx, a, Op{Action: "group.delete", Actor: actor, ClusterID: c.ID, TargetKind: "group", TargetID: id, IdempotencyKey: idemKey,
		Details: map[string]any{"name": g.Name}},
		func(tx pgx.Tx) (bool, error) {
			children, members, err := store.GroupHasContents(ctx, tx, id)
			if err != nil {
				return false, err
			}
			if children > 0 || members > 0 {
				return false, &Error{Code: CodeConflict, Message: "only an empty group can be deleted: move its child groups and nodes first",
					Details: map[string]any{"child_groups": children, "members": members}}
			}
			return true, store.DeleteGroup(ctx, tx, id)
		})
	return g, err
}

// ListGroups lists a cluster's groups.
func (a *Authority) ListGroups(ctx context.Context, cluster string) ([]store.Group, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.ListGroups(ctx, a.db.Pool, c.ID)
	return out, asErrorOrNil(err)
}

// SetNodeGroup places a node's membership in a group of the same cluster, or
// in none when group is "" (fenced, audited).
func (a *Authority) SetNodeGroup(ctx context.Context, actor Actor, cluster, nodeID, group, idemKey string) (store.Membership, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return store.Membership{}, err
	}
	var gid *string
	if group != "" {
		g, err := a.clusterGroup(ctx, c, group)
		if err != nil {
			return store.Membership{}, err
		}
		gid = &g.ID
	}
	m, err := Fenced(ctx, a, Op{Action: "membership.group", Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: nodeID, IdempotencyKey: idemKey,
		Details: map[string]any{"group": group}},
		func(tx pgx.Tx) (store.Membership, error) {
			if err := store.SetMembershipGroup(ctx, tx, c.ID, nodeID, gid); err != nil {
				if errors.Is(err, store.ErrNotFound) {
					return store.Membership{}, Errf(CodeNotFound, "node %s is not a member of cluster %s", nodeID, c.Slug)
				}
				return store.Membership{}, err
			}
			return store.GetMembership(ctx, tx, c.ID, nodeID)
		})
	if err != nil {
		return m, err
	}
	a.afterChange(ctx, c.ID)
	return m, nil
}
