package workload

import (
	"fmt"

	"github.com/rap-fabric/core/domain"
)

// Assignment is one service assignment of a verified snapshot.
type Assignment struct {
	// ServiceID is the service instance id (unique per cluster).
	ServiceID string
	Type      string
	// Instance is the instance name of Type on the node ("default", "web").
	Instance       string
	Role           domain.Role
	OrganizationID string
	// Config is the signed service config; its "workload" object is the
	// workloadspec.Spec.
	Config []byte
}

// Grant is one active role of the node in the assignment's cluster.
type Grant struct {
	Role           domain.Role
	OrganizationID string
}

// Authorize returns "" when an active role authorizes the assignment, else
// the reason it is blocked: the role must be the service's own type (a
// service runs only under the role of its type) and, when the grant is
// restricted to an organization, the service must be of that organization.
func Authorize(a Assignment, grants []Grant) string {
	role := a.Role
	if role == "" {
		role = domain.Role(a.Type)
	}
	if string(role) != a.Type {
		return fmt.Sprintf("service type %q does not match its role %q", a.Type, role)
	}
	held := false
	for _, g := range grants {
		if g.Role != role {
			continue
		}
		held = true
		if g.OrganizationID == "" || g.OrganizationID == a.OrganizationID {
			return ""
		}
	}
	if held {
		return fmt.Sprintf("the node's %s role is restricted to another organization", role)
	}
	return fmt.Sprintf("no active role of this node authorizes service type %q", a.Type)
}
