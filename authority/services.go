package authority

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/rap-fabric/core/domain"
	"github.com/rap-fabric/core/store"
	"github.com/rap-fabric/core/workloadspec"
)

// ServiceRemoteAccess is the product service "Remote Server/Desktop Access".
// Its protocol adapters (rdp, vnc, ssh) are an internal config field
// ("adapters"), never separate organization-facing services.
const ServiceRemoteAccess = "remote-access"

// adapterCapability maps each remote-access adapter to the capability a node
// needs to run it.
var adapterCapability = map[string]domain.Capability{
	"rdp": domain.CapRunRDPWorker,
	"vnc": domain.CapRunVNCWorker,
	"ssh": domain.CapRunSSHWorker,
}

// internalAdapters are roles that are adapters of remote-access, not
// services of their own.
var internalAdapters = map[domain.Role]bool{domain.RoleRDPWorker: true, domain.RoleVNCWorker: true, domain.RoleSSHWorker: true}

var instanceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$`)

// SetServiceRequest sets the desired state of one service workload on a node.
type SetServiceRequest struct {
	// Instance distinguishes several instances of one type; "" means "default".
	Instance     string          `json:"instance,omitempty"`
	Organization string          `json:"organization,omitempty"`
	Enabled      bool            `json:"enabled"`
	Config       json.RawMessage `json:"config,omitempty"`
}

// ServiceView is a service instance with the node's snapshot version after
// the change.
type ServiceView struct {
	store.ServiceInstance
	SnapshotVersion uint64 `json:"snapshot_version"`
}

func checkServiceType(t string) (domain.Role, error) {
	r := domain.Role(t)
	if internalAdapters[r] {
		return r, &Error{Code: CodeInvalid, Message: "rdp, vnc and ssh are internal adapters of the remote-access service, not services of their own; " +
			"set service remote-access with config.adapters instead", Details: map[string]any{"service": ServiceRemoteAccess}}
	}
	if !r.Valid() || r.IsMesh() || r == domain.RoleConfigStorage || r == domain.RoleAdminIngress {
		return r, Errf(CodeInvalid, "unknown service type %q (services are the workloads of service roles, e.g. remote-access, vpn-exit, egress-node)", t)
	}
	return r, nil
}

// remoteAccessConfig fills and checks config.adapters of remote-access: by
// default every adapter the node can run; an adapter the node cannot run is
// refused with details.missing_capabilities.
func remoteAccessConfig(cfg json.RawMessage, caps []domain.Capability) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, Errf(CodeInvalid, "config must be a JSON object")
	}
	var adapters []string
	switch v := m["adapters"].(type) {
	case nil:
		for _, ad := range []string{"rdp", "ssh", "vnc"} {
			if slices.Contains(caps, adapterCapability[ad]) {
				adapters = append(adapters, ad)
			}
		}
		if len(adapters) == 0 {
			return nil, &Error{Code: CodeInvalid, Message: "the node can run none of the remote-access adapters (rdp, vnc, ssh)",
				Details: map[string]any{"missing_capabilities": []domain.Capability{domain.CapRunRDPWorker, domain.CapRunVNCWorker, domain.CapRunSSHWorker}}}
		}
	case []any:
		var missing []domain.Capability
		for _, x := range v {
			s, _ := x.(string)
			c, ok := adapterCapability[s]
			if !ok {
				return nil, Errf(CodeInvalid, "config.adapters: unknown adapter %v (rdp, vnc or ssh)", x)
			}
			if !slices.Contains(caps, c) {
				missing = append(missing, c)
			}
			if !slices.Contains(adapters, s) {
				adapters = append(adapters, s)
			}
		}
		if len(missing) > 0 {
			return nil, &Error{Code: CodeInvalid, Message: "the node cannot run every requested remote-access adapter", Details: map[string]any{"missing_capabilities": missing}}
		}
		slices.Sort(adapters)
	default:
		return nil, Errf(CodeInvalid, "config.adapters must be a list of rdp, vnc, ssh")
	}
	m["adapters"] = adapters
	return json.Marshal(m)
}

// SetService enables or disables (and configures) a desired service workload
// on a node in a cluster (fenced, audited). Enabling needs an active
// assignment of the matching role on the node whose organization scope allows
// the service's organization. The node's snapshot is rebuilt before the call
// returns.
func (a *Authority) SetService(ctx context.Context, actor Actor, cluster, nodeID, serviceType string, req SetServiceRequest, idemKey string) (ServiceView, error) {
	role, err := checkServiceType(serviceType)
	if err != nil {
		return ServiceView{}, err
	}
	if req.Instance == "" {
		req.Instance = "default"
	}
	if !instanceRE.MatchString(req.Instance) {
		return ServiceView{}, Errf(CodeInvalid, "instance must be 1-200 letters, digits, '.', '_' or '-'")
	}
	cfg, err := checkDocument("config", req.Config, false)
	if err != nil {
		return ServiceView{}, err
	}
	spec, err := workloadspec.FromConfig(cfg)
	if err != nil {
		return ServiceView{}, Errf(CodeInvalid, "config.%v", err)
	}
	if spec != nil && workloadspec.NativeOnly(serviceType) && spec.Driver != workloadspec.DriverNative {
		return ServiceView{}, Errf(CodeInvalid, "config.workload.driver: %s runs natively on the host, never in a container", serviceType)
	}
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return ServiceView{}, err
	}
	org, err := a.organizationID(ctx, req.Organization)
	if err != nil {
		return ServiceView{}, err
	}
	desired := "disabled"
	if req.Enabled {
		desired = "enabled"
	}
	op := Op{Action: "service." + map[bool]string{true: "enable", false: "disable"}[req.Enabled], Actor: actor, ClusterID: c.ID, TargetKind: "node", TargetID: nodeID,
		IdempotencyKey: idemKey, Details: map[string]any{"service": serviceType, "instance": req.Instance, "organization": req.Organization}}
	s, err := Fenced(ctx, a, op, func(tx pgx.Tx) (store.ServiceInstance, error) {
		m, err := store.GetMembership(ctx, tx, c.ID, nodeID)
		if err != nil {
			return store.ServiceInstance{}, Errf(CodeNotFound, "node %s is not a member of cluster %s", nodeID, c.Slug)
		}
		if req.Enabled {
			if m.Status != string(domain.MembershipActive) {
				return store.ServiceInstance{}, Errf(CodeConflict, "the node's membership in this cluster is %s", m.Status)
			}
			if err := a.serviceAuthorized(ctx, tx, c.ID, nodeID, role, org); err != nil {
				return store.ServiceInstance{}, err
			}
			if serviceType == ServiceRemoteAccess {
				caps, err := store.ReportedCapabilities(ctx, tx, nodeID)
				if err != nil {
					return store.ServiceInstance{}, err
				}
				if cfg, err = remoteAccessConfig(cfg, caps); err != nil {
					return store.ServiceInstance{}, err
				}
			}
		}
		return store.UpsertService(ctx, tx, store.ServiceInstance{ID: store.NewID(), ClusterID: c.ID, NodeID: nodeID, ServiceType: serviceType,
			ServiceInstanceID: req.Instance, OrganizationID: org, DesiredState: desired, Config: cfg})
	})
	if err != nil {
		return ServiceView{}, err
	}
	a.afterChange(ctx, c.ID)
	return ServiceView{ServiceInstance: s, SnapshotVersion: a.snapshotVersion(ctx, c.ID, nodeID)}, nil
}

// serviceAuthorized checks that the node holds an active role for the
// service that allows org (unrestricted, or restricted to the same org).
func (a *Authority) serviceAuthorized(ctx context.Context, q store.Querier, clusterID, nodeID string, role domain.Role, org *string) error {
	rs, err := store.ListRoleAssignments(ctx, q, clusterID, nodeID, store.Page{Limit: 500})
	if err != nil {
		return err
	}
	held := false
	for _, r := range rs {
		if r.Role != string(role) || r.Status != "active" {
			continue
		}
		held = true
		if r.OrganizationID == nil || (org != nil && *r.OrganizationID == *org) {
			return nil
		}
	}
	if held {
		return Errf(CodeForbidden, "the node's %s role is restricted to another organization", role)
	}
	return &Error{Code: CodeInvalid, Message: "the node holds no active " + string(role) + " role in this cluster; assign the role first",
		Details: map[string]any{"required_role": role}}
}

// ClusterServicesResult is the outcome of a cluster-wide service change.
type ClusterServicesResult struct {
	Changed []store.ServiceInstance `json:"changed"`
	// Skipped are instances left disabled because their node no longer holds
	// the role that authorizes them.
	Skipped []store.ServiceInstance `json:"skipped"`
}

// SetClusterServices enables or disables every desired instance of a service
// type in a cluster (fenced, audited).
func (a *Authority) SetClusterServices(ctx context.Context, actor Actor, cluster, serviceType string, enabled bool, idemKey string) (ClusterServicesResult, error) {
	role, err := checkServiceType(serviceType)
	if err != nil {
		return ClusterServicesResult{}, err
	}
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return ClusterServicesResult{}, err
	}
	desired := map[bool]string{true: "enabled", false: "disabled"}[enabled]
	out, err := Fenced(ctx, a, Op{Action: "service.cluster." + map[bool]string{true: "enable", false: "disable"}[enabled], Actor: actor, ClusterID: c.ID,
		TargetKind: "cluster", TargetID: c.ID, IdempotencyKey: idemKey, Details: map[string]any{"service": serviceType}},
		func(tx pgx.Tx) (ClusterServicesResult, error) {
			res := ClusterServicesResult{Changed: []store.ServiceInstance{}, Skipped: []store.ServiceInstance{}}
			if !enabled {
				ch, err := store.SetServicesDesired(ctx, tx, c.ID, "", serviceType, desired)
				res.Changed = ch
				return res, err
			}
			for off := 0; ; off += 500 {
				all, err := store.ListServices(ctx, tx, c.ID, "", serviceType, store.Page{Limit: 500, Offset: off})
				if err != nil {
					return res, err
				}
				for _, s := range all {
					if s.DesiredState == desired {
						continue
					}
					if a.serviceAuthorized(ctx, tx, c.ID, s.NodeID, role, s.OrganizationID) != nil {
						res.Skipped = append(res.Skipped, s)
						continue
					}
					ch, err := store.SetServicesDesired(ctx, tx, c.ID, s.NodeID, serviceType, desired)
					if err != nil {
						return res, err
					}
					res.Changed = append(res.Changed, ch...)
				}
				if len(all) < 500 {
					return res, nil
				}
			}
		})
	if err != nil {
		return out, err
	}
	a.afterChange(ctx, c.ID)
	return out, nil
}

// ListServices lists a cluster's desired service instances.
func (a *Authority) ListServices(ctx context.Context, cluster, nodeID, serviceType string, p store.Page) ([]store.ServiceInstance, error) {
	c, err := a.GetCluster(ctx, cluster)
	if err != nil {
		return nil, err
	}
	out, err := store.ListServices(ctx, a.db.Pool, c.ID, nodeID, serviceType, p)
	return out, asErrorOrNil(err)
}
