package httpapi

// Version storage (owner and agent API; see authority/releases.go).
//
//	GET  /v1/releases/roots                               registered release root keys
//	PUT  /v1/releases/roots                               register/replace them (fenced, Raft, step-up)
//	GET  /v1/releases/key-sets                            published signing key sets
//	POST /v1/releases/key-sets                            publish a root-signed key set (fenced, step-up)
//	GET  /v1/releases                                     releases (?product=)
//	POST /v1/releases                                     publish a signed manifest (fenced)
//	GET  /v1/releases/{release}                           one release (id or product@version)
//	GET  /v1/releases/artifacts/{sha256}                  an artifact's upload state
//	PUT  /v1/releases/artifacts/{sha256}/chunks/{offset}  upload a chunk {"data": base64} (fenced; resumable)
//	GET  /v1/agent/releases/{product}/{version}           agent (mTLS): signed manifest + key set
//	GET  /v1/agent/releases/artifacts/{sha256}            agent (mTLS): artifact bytes (?offset= to resume)

import (
	"github.com/rap-fabric/core/agentapi"
	"net/http"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/store"
)

// chunkBody is the body of an artifact chunk upload.
type chunkBody struct {
	Data []byte `json:"data"`
}

func (s *Server) releaseRoutes(r *mux.Router) {
	owner := func(name, method, path string, h ownerHandler) {
		r.Handle(path, s.wrap(name, s.ownerAuth(h))).Methods(method)
	}
	agent := func(name, method, path string, h func(w http.ResponseWriter, r *http.Request, node authority.NodePrincipal) error) {
		r.Handle(path, s.wrap(name, s.nodeAuth(h))).Methods(method)
	}
	owner("releases.roots.get", http.MethodGet, "/v1/releases/roots", read(func(*http.Request) (authority.RootsView, error) {
		rel, err := s.releasesService()
		if err != nil {
			return authority.RootsView{}, err
		}
		return rel.Roots(), nil
	}))
	owner("releases.roots.set", http.MethodPut, "/v1/releases/roots", write(http.StatusOK, func(r *http.Request, actor authority.Actor, b authority.SetRootsRequest, k string) (authority.RootsView, error) {
		rel, err := s.releasesService()
		if err != nil {
			return authority.RootsView{}, err
		}
		return rel.SetRoots(r.Context(), actor, b, k)
	}))
	owner("releases.keysets.list", http.MethodGet, "/v1/releases/key-sets", list(func(r *http.Request, p store.Page) ([]store.ReleaseKeySet, error) {
		rel, err := s.releasesService()
		if err != nil {
			return nil, err
		}
		return rel.ListKeySets(r.Context(), p)
	}))
	owner("releases.keysets.publish", http.MethodPost, "/v1/releases/key-sets", write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b release.Envelope, k string) (store.ReleaseKeySet, error) {
		rel, err := s.releasesService()
		if err != nil {
			return store.ReleaseKeySet{}, err
		}
		return rel.PublishKeySet(r.Context(), actor, b, k)
	}))
	owner("releases.list", http.MethodGet, "/v1/releases", list(func(r *http.Request, p store.Page) ([]store.Release, error) {
		rel, err := s.releasesService()
		if err != nil {
			return nil, err
		}
		return rel.ListReleases(r.Context(), r.URL.Query().Get("product"), p)
	}))
	owner("releases.publish", http.MethodPost, "/v1/releases", write(http.StatusCreated, func(r *http.Request, actor authority.Actor, b release.Envelope, k string) (authority.ReleaseView, error) {
		rel, err := s.releasesService()
		if err != nil {
			return authority.ReleaseView{}, err
		}
		return rel.Publish(r.Context(), actor, b, k)
	}))
	owner("releases.artifact.get", http.MethodGet, "/v1/releases/artifacts/{sha256}", read(func(r *http.Request) (store.ReleaseArtifact, error) {
		rel, err := s.releasesService()
		if err != nil {
			return store.ReleaseArtifact{}, err
		}
		return rel.Artifact(r.Context(), mux.Vars(r)["sha256"])
	}))
	owner("releases.artifact.chunk", http.MethodPut, "/v1/releases/artifacts/{sha256}/chunks/{offset}", write(http.StatusOK, func(r *http.Request, actor authority.Actor, b chunkBody, _ string) (store.ReleaseArtifact, error) {
		rel, err := s.releasesService()
		if err != nil {
			return store.ReleaseArtifact{}, err
		}
		off, err := strconv.ParseInt(mux.Vars(r)["offset"], 10, 64)
		if err != nil || off < 0 {
			return store.ReleaseArtifact{}, authority.Errf(authority.CodeInvalid, "offset must be a non-negative integer")
		}
		return rel.UploadChunk(r.Context(), actor, mux.Vars(r)["sha256"], off, b.Data)
	}))
	owner("releases.get", http.MethodGet, "/v1/releases/{release}", read(func(r *http.Request) (authority.ReleaseView, error) {
		rel, err := s.releasesService()
		if err != nil {
			return authority.ReleaseView{}, err
		}
		return rel.GetRelease(r.Context(), mux.Vars(r)["release"])
	}))
	// The artifact route first: its path would also match the manifest's.
	agent("agent.release.artifact", http.MethodGet, agentapi.PathReleaseArtifact, s.agentArtifact)
	agent("agent.release.manifest", http.MethodGet, agentapi.PathReleaseManifest, func(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
		rel, err := s.releasesService()
		if err != nil {
			return err
		}
		out, err := rel.AgentManifest(r.Context(), n, mux.Vars(r)["product"], mux.Vars(r)["version"])
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

func (s *Server) releasesService() (*authority.Releases, error) {
	if s.releases == nil {
		return nil, authority.Errf(authority.CodeUnavailable, "version storage is not configured on this authority")
	}
	return s.releases, nil
}

// agentArtifact streams an artifact's bytes. Once the first byte is written
// an error can only cut the stream short: the agent checks size and sha256
// against the signed manifest and resumes with ?offset=.
func (s *Server) agentArtifact(w http.ResponseWriter, r *http.Request, n authority.NodePrincipal) error {
	rel, err := s.releasesService()
	if err != nil {
		return err
	}
	var off int64
	if v := r.URL.Query().Get("offset"); v != "" {
		if off, err = strconv.ParseInt(v, 10, 64); err != nil || off < 0 {
			return authority.Errf(authority.CodeInvalid, "offset must be a non-negative integer")
		}
	}
	started := false
	err = rel.ServeArtifact(r.Context(), n, mux.Vars(r)["sha256"], off, func(size int64) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		started = true
	}, w)
	if err != nil && started {
		s.log.Warn("artifact stream cut short", "node_id", n.NodeID, "sha256", mux.Vars(r)["sha256"], "error", err)
		return nil
	}
	return err
}
