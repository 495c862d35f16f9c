package httpapi

// Snapshot distribution and views.
//
// Agent routes (node certificate over mTLS; any authority answers from
// PostgreSQL, no leader needed):
//
//	GET /v1/agent/snapshot?after_version=N[&wait=S]
//	    Long poll: answers as soon as the node's newest signed snapshot has a
//	    version above N, or 204 No Content after S seconds (default and
//	    maximum 25). The body is JSON AgentSnapshot whose "snapshot" field is
//	    the signed wire envelope (snapshot.Signed.MarshalBinary) in base64;
//	    with "Accept: application/octet-stream" the body is the raw envelope
//	    and the version is in the X-Rap-Snapshot-Version header. The agent
//	    verifies it with snapshot.Decode + snapshot.Verify; nothing in the
//	    JSON wrapper is trusted.
//	GET /v1/agent/ca
//	    The cluster's snapshot verification keys (authority.TrustedCA).
//	GET /v1/agent/storage/snapshots
//	    For a node with an active config-storage role: the newest signed
//	    snapshots of the nodes it caches and serves (its own snapshot's
//	    cache_nodes), as {"items": [AgentSnapshot]}, each "snapshot" sealed
//	    to its target's X25519 key (snapshot.Seal: verifiable, not readable
//	    by the storage node).
//
// Owner routes: per-cluster desired vs applied versions (?lagging=true for
// the nodes behind), one node's snapshot with its content, and a manual
// rebuild.

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

// AgentSnapshot is one signed snapshot as served to agents and config-storage
// nodes (the agentapi contract).
type AgentSnapshot = agentapi.Snapshot

func agentSnapshot(s store.StoredSnapshot) AgentSnapshot {
	return AgentSnapshot{ClusterID: s.ClusterID, NodeID: s.NodeID, Version: s.Version, Epoch: s.Epoch, KeyID: s.KeyID,
		IssuedAt: s.IssuedAt, ExpiresAt: s.ExpiresAt, Snapshot: s.Signed}
}

func (s *Server) agentSnapshot(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after_version"); v != "" {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return authority.Errf(authority.CodeInvalid, "after_version must be a non-negative integer")
		}
		after = x
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 || x > 25 {
			return authority.Errf(authority.CodeInvalid, "wait must be 0 to 25 seconds")
		}
		wait = time.Duration(x) * time.Second
		if x == 0 {
			wait = time.Millisecond
		}
	}
	snap, ok, err := s.a.WaitSnapshot(r.Context(), n, after, wait)
	if err != nil {
		return err
	}
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if strings.Contains(r.Header.Get("Accept"), "application/octet-stream") {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Rap-Snapshot-Version", strconv.FormatUint(snap.Version, 10))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(snap.Signed)
		return nil
	}
	writeJSON(w, http.StatusOK, agentSnapshot(snap))
	return nil
}

func (s *Server) agentCA(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	t, err := s.a.ClusterTrust(n.ClusterID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

func (s *Server) agentStorageSnapshots(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	ss, err := s.a.StorageSnapshots(r.Context(), n)
	if err != nil {
		return err
	}
	out := agentapi.SnapshotList{Items: make([]AgentSnapshot, 0, len(ss))}
	for _, x := range ss {
		out.Items = append(out.Items, agentSnapshot(x))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listSnapshotStatus(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	lagging := q.Get("lagging") == "true" || q.Get("lagging") == "1"
	out, err := s.a.SnapshotStatus(r.Context(), mux.Vars(r)["cluster"], q.Get("node"), lagging, p)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, listOf(out, p))
	return nil
}

func (s *Server) getNodeSnapshot(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	v := mux.Vars(r)
	out, err := s.a.NodeSnapshot(r.Context(), v["cluster"], v["id"])
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type rebuildBody struct {
	Force bool `json:"force"`
}

func (s *Server) rebuildSnapshots(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	var b rebuildBody
	if err := decodeJSON(w, r, &b); err != nil {
		return err
	}
	out, err := s.a.RebuildSnapshots(r.Context(), actor, mux.Vars(r)["cluster"], b.Force)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
