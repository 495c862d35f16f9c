package httpapi

// Audit anchor and export (owner API; see docs/audit.md).
//
//	GET  /v1/audit/checkpoint            the latest Raft audit checkpoint
//	POST /v1/audit/checkpoint            take one now (leader; verifies the chain since the last one)
//	POST /v1/audit/reanchor              after a PostgreSQL restore: supersede a checkpoint the chain is
//	                                     behind with one at the chain head (step-up, fenced, audited)
//	GET  /v1/audit/export?after_seq=N&limit=M
//	                                     chained events with seq > N in chain order, every column,
//	                                     hashes in hex: the append-only stream rapctl audit export pages through

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/store"
)

// AuditExportEvent is one exported audit event: every column of
// cluster_audit_events, hashes as hex.
type AuditExportEvent struct {
	ID             int64           `json:"id"`
	Seq            int64           `json:"seq"`
	At             time.Time       `json:"at"`
	ClusterID      *string         `json:"cluster_id"`
	OrganizationID *string         `json:"organization_id"`
	Actor          string          `json:"actor"`
	ActorKind      string          `json:"actor_kind"`
	Device         string          `json:"device"`
	SourceAddr     string          `json:"source_addr"`
	Action         string          `json:"action"`
	TargetKind     string          `json:"target_kind"`
	TargetID       string          `json:"target_id"`
	Outcome        string          `json:"outcome"`
	Risk           json.RawMessage `json:"risk"`
	Details        json.RawMessage `json:"details"`
	FenceEpoch     *int64          `json:"fence_epoch"`
	PrevHash       string          `json:"prev_hash"`
	Hash           string          `json:"hash"`
}

// AuditExportPage is a page of the export: events in chain order and the
// cursor to ask for next (the last event's seq, or after_seq when empty).
type AuditExportPage struct {
	Events       []AuditExportEvent `json:"events"`
	NextAfterSeq int64              `json:"next_after_seq"`
}

func (s *Server) getAuditCheckpoint(w http.ResponseWriter, _ *http.Request, _ authority.Actor) error {
	cp, err := s.a.LatestAuditCheckpoint()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, cp)
	return nil
}

func (s *Server) createAuditCheckpoint(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, _ noBody, _ string) (authority.AuditAnchor, error) {
		return s.a.CheckpointAudit(r.Context(), actor)
	})(w, r, actor)
}

func (s *Server) reanchorAudit(w http.ResponseWriter, r *http.Request, actor authority.Actor) error {
	return write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.ReanchorAuditRequest, idemKey string) (authority.AuditAnchor, error) {
		return s.a.ReanchorAudit(r.Context(), actor, b, idemKey)
	})(w, r, actor)
}

func (s *Server) exportAudit(w http.ResponseWriter, r *http.Request, _ authority.Actor) error {
	q := r.URL.Query()
	var after int64
	if v := q.Get("after_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return authority.Errf(authority.CodeInvalid, "after_seq must be a non-negative integer")
		}
		after = n
	}
	limit := 500
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return authority.Errf(authority.CodeInvalid, "limit must be 1 to 1000")
		}
		limit = n
	}
	evs, err := store.ListAuditChained(r.Context(), s.a.DB().Pool, after, limit)
	if err != nil {
		return err
	}
	page := AuditExportPage{Events: make([]AuditExportEvent, 0, len(evs)), NextAfterSeq: after}
	for _, e := range evs {
		x := AuditExportEvent{ID: e.ID, At: e.At.UTC(), ClusterID: e.ClusterID, OrganizationID: e.OrganizationID, Actor: e.Actor,
			ActorKind: e.ActorKind, Device: e.Device, SourceAddr: e.SourceAddr, Action: e.Action, TargetKind: e.TargetKind,
			TargetID: e.TargetID, Outcome: e.Outcome, Risk: e.Risk, Details: e.Details, FenceEpoch: e.FenceEpoch,
			PrevHash: hex.EncodeToString(e.PrevHash), Hash: hex.EncodeToString(e.Hash)}
		if e.Seq != nil {
			x.Seq = *e.Seq
			page.NextAfterSeq = x.Seq
		}
		page.Events = append(page.Events, x)
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
