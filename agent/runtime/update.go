package runtime

// Self-update (spec stage C19, agent/updater): the desired agent version
// arrives in a signed snapshot (updates section). The agent verifies the
// release against the root keys pinned in that snapshot (key set threshold,
// signing key, expiry, blocklist, architecture, downgrade), streams the
// artifact into its version slot checking size and sha256, records each
// step in pending_update before taking it, reports its update state to the
// authorities, and exits with updater.ExitSwitch so that its launcher starts
// the new version and judges it. After a restart it reports how the last
// attempt ended (promoted or rolled back) and never retries a version it was
// rolled back from while the same version stays desired.

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/agent/updater"
	"github.com/rap-fabric/core/agentapi"
	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/snapshot"
)

// UpdateOptions configure self-update. The zero value disables it.
type UpdateOptions struct {
	// SlotsDir is the launcher's version slot directory; "" disables
	// self-update (the agent only reports its version).
	SlotsDir string
	// OS and Arch select the artifact; "" means this build's GOOS/GOARCH.
	OS, Arch string
	// CacheListen is the TCP address of the update-cache endpoint, served
	// only while the node holds the update-cache role (update_cache.go);
	// "" never serves. CacheAdvertise is the address other nodes use
	// (default: derived from the listener). CacheDir holds the mirrored
	// artifacts (default: update-cache/ next to the state file).
	CacheListen, CacheAdvertise, CacheDir string
}

// ErrSwitchRequested: Run returns it when a new version is staged and the
// launcher must start it (exit with updater.ExitSwitch).
var ErrSwitchRequested = errors.New("new agent version staged: switch requested")

type (
	agentRelease = agentapi.AgentRelease
	updateReport = agentapi.UpdateReport
)

type updateOrder struct {
	m *member
	u snapshot.Updates
}

// offerUpdates hands a freshly applied snapshot's updates section to the
// update loop (non-blocking: a newer one replaces a pending one).
func (m *member) offerUpdates(u *snapshot.Updates) {
	if u == nil || m.a.updates == nil {
		return
	}
	o := updateOrder{m: m, u: *u}
	select {
	case m.a.updates <- o:
	default:
		select {
		case <-m.a.updates:
		default:
		}
		select {
		case m.a.updates <- o:
		default:
		}
	}
}

// updateLoop runs the agent's update steps one order at a time. It returns
// ErrSwitchRequested once a new version is staged. While this process is
// itself a trial (its launcher has not promoted it yet) it starts no update.
func (a *Agent) updateLoop(ctx context.Context) error {
	log := a.log.Named("update")
	var last *member
	reported := map[string]bool{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if last != nil {
				a.settle(ctx, last, reported, log)
			}
		case o := <-a.updates:
			last = o.m
			if a.settle(ctx, o.m, reported, log) {
				continue
			}
			err := a.update(ctx, o, log)
			if errors.Is(err, ErrSwitchRequested) {
				return err
			}
			if err != nil {
				log.Warn("update not applied", "error", err)
			}
		}
	}
}

// settle reports how the last update attempt stands and finishes its
// record once the launcher promoted this version. It returns true while
// this process is an unpromoted trial.
func (a *Agent) settle(ctx context.Context, m *member, reported map[string]bool, log hclog.Logger) bool {
	cluster, u, ok, err := updater.FindPending(a.st)
	if err != nil || !ok {
		return false
	}
	cur := a.o.AgentVersion
	switch {
	case u.Version == cur && (u.State == updater.StepHealthChecking || u.State == updater.StepSwitchRequested || u.State == updater.StepPromoted):
		if c, err := (updater.Slots{Dir: a.o.Update.SlotsDir}).Current(); err != nil || c != cur {
			if !reported["trial/"+cur] {
				a.report(ctx, m, updateReport{Product: release.ProductNodeAgent, CurrentVersion: cur, FromVersion: u.PreviousVersion,
					TargetVersion: cur, State: "health_checking"}, log)
				reported["trial/"+cur] = true
			}
			return true
		}
		a.report(ctx, m, updateReport{Product: release.ProductNodeAgent, CurrentVersion: cur, FromVersion: u.PreviousVersion,
			TargetVersion: cur, State: "running"}, log)
		a.reportedRunning = cur
		// Promoted: the migrated state is kept, its backup goes.
		if err := updater.DropStateBackup(u); err != nil {
			log.Warn("removing the state backup failed", "backup", u.StateBackup, "error", err)
		}
		if err := a.st.ClearPendingUpdate(cluster); err != nil {
			log.Warn("clearing the pending update failed", "error", err)
		}
		log.Info("update promoted", "version", cur)
	case u.State == updater.StepRolledBack && !reported["rollback/"+u.Version]:
		a.report(ctx, m, updateReport{Product: release.ProductNodeAgent, CurrentVersion: cur, FromVersion: u.PreviousVersion,
			TargetVersion: u.Version, State: "rolled_back", LastFailure: u.LastFailure}, log)
		reported["rollback/"+u.Version] = true
		log.Warn("update was rolled back", "version", u.Version, "reason", u.LastFailure)
	}
	return false
}

func (a *Agent) report(ctx context.Context, m *member, r updateReport, log hclog.Logger) {
	r.PreviousVersion = a.previousVersion()
	a.upMu.Lock()
	st := r
	a.upState = &st
	a.upMu.Unlock()
	m.mu.Lock()
	c := m.client
	m.mu.Unlock()
	if c == nil {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, a.o.RequestTimeout*2)
	defer cancel()
	if err := c.Do(rctx, http.MethodPost, agentapi.PathUpdates, r, nil, nil); err != nil {
		log.Debug("update report not delivered", "error", err)
	}
}

func (a *Agent) update(ctx context.Context, o updateOrder, log hclog.Logger) error {
	var want *snapshot.DesiredVersion
	for i, d := range o.u.Desired {
		if d.Product == release.ProductNodeAgent {
			want = &o.u.Desired[i]
		}
	}
	cur := a.o.AgentVersion
	if want == nil {
		return nil
	}
	if want.Version == cur {
		if a.reportedRunning != cur {
			a.report(ctx, o.m, updateReport{Product: release.ProductNodeAgent, CurrentVersion: cur, TargetVersion: cur, State: "running"}, log)
			a.reportedRunning = cur
		}
		return nil
	}
	if _, u, ok, _ := updater.FindPending(a.st); ok && u.Version == want.Version && u.State == updater.StepRolledBack {
		return nil // this version failed here; wait for another desired version
	}
	rep := updateReport{Product: release.ProductNodeAgent, CurrentVersion: cur, FromVersion: cur, TargetVersion: want.Version}
	fail := func(step string, err error) error {
		rep.State, rep.LastFailure = "failed", step+": "+err.Error()
		if len(rep.LastFailure) > 500 {
			rep.LastFailure = rep.LastFailure[:500]
		}
		a.report(ctx, o.m, rep, log)
		return fmt.Errorf("%s %s: %w", step, want.Version, err)
	}
	rep.State = "checking"
	a.report(ctx, o.m, rep, log)
	m, art, err := a.verifyRelease(ctx, o, *want)
	if err != nil {
		return fail("verify", err)
	}
	rep.State = "downloading"
	a.report(ctx, o.m, rep, log)
	log.Info("release verified; downloading the artifact", "version", m.Version, "size", art.Size)
	slots := updater.Slots{Dir: a.o.Update.SlotsDir}
	err = updater.Stage(a.st, slots, updater.StageRequest{Cluster: o.m.cluster, ReleaseID: want.ManifestDigest, Version: m.Version, Artifact: art,
		Current: cur, AllowDowngrade: want.AllowDowngrade, NodeState: m.Migration.NodeState, Now: a.o.Now(), Sources: a.artifactSources(ctx, o.m, o.u, art),
		OnSource: func(name string, err error) {
			if err != nil {
				log.Warn("artifact source refused; trying the next", "source", name, "version", m.Version, "error", err)
				return
			}
			log.Info("artifact fetched and verified", "source", name, "version", m.Version, "sha256", art.SHA256)
		}})
	if err != nil {
		return fail("stage", err)
	}
	rep.State = "starting"
	a.report(ctx, o.m, rep, log)
	log.Info("new agent version staged; asking the launcher to switch", "version", m.Version)
	return ErrSwitchRequested
}

// verifyRelease fetches and verifies the desired release: key set against
// the snapshot's release roots, manifest against the key set and this host.
func (a *Agent) verifyRelease(ctx context.Context, o updateOrder, d snapshot.DesiredVersion) (release.Manifest, release.Artifact, error) {
	return a.verifyProductRelease(ctx, o.m, o.u, d, release.ProductNodeAgent, a.o.AgentVersion)
}

// verifyProductRelease fetches and verifies the desired release of product
// (the agent or a service type) for this host, current being the version
// it replaces (downgrade protection; "" or a development build: none).
func (a *Agent) verifyProductRelease(ctx context.Context, m *member, u snapshot.Updates, d snapshot.DesiredVersion, product, current string) (release.Manifest, release.Artifact, error) {
	m.mu.Lock()
	c := m.client
	m.mu.Unlock()
	if c == nil {
		return release.Manifest{}, release.Artifact{}, errors.New("no authority client")
	}
	var ar agentRelease
	rctx, cancel := context.WithTimeout(ctx, a.o.RequestTimeout*3)
	defer cancel()
	if err := c.Do(rctx, http.MethodGet, agentapi.ReleasePath(d.Product, d.Version), nil, &ar, nil); err != nil {
		return release.Manifest{}, release.Artifact{}, err
	}
	roots := release.Roots{Threshold: u.ReleaseRoots.Threshold}
	for _, k := range u.ReleaseRoots.Keys {
		roots.Keys = append(roots.Keys, ed25519.PublicKey(k))
	}
	now := a.o.Now()
	kse, err := release.Unmarshal(ar.KeySet, 0)
	if err != nil {
		return release.Manifest{}, release.Artifact{}, err
	}
	ks, err := release.VerifyKeySet(kse, roots, now, 0)
	if err != nil {
		return release.Manifest{}, release.Artifact{}, err
	}
	me, err := release.Unmarshal(ar.Manifest, 0)
	if err != nil {
		return release.Manifest{}, release.Artifact{}, err
	}
	if me.Digest() != d.ManifestDigest {
		return release.Manifest{}, release.Artifact{}, fmt.Errorf("manifest %s is not the one the snapshot names (%s)", me.Digest(), d.ManifestDigest)
	}
	e := release.Expect{Product: product, OS: a.o.Update.OS, Arch: a.o.Update.Arch, Current: current, Now: now, KeySet: ks}
	if d.AllowDowngrade {
		e.AllowDowngradeTo = d.Version
	}
	for _, b := range u.Blocklist {
		if b.Product == product {
			e.Blocklist = append(e.Blocklist, b.Version)
		}
	}
	if _, err := release.ParseVersion(e.Current); err != nil {
		e.Current = "" // a development build ("dev") has no version to protect
	}
	return release.VerifyManifest(me, e)
}

// fetchArtifact streams the artifact from the first authority that serves
// it (mTLS with the node certificate); the bytes are verified by the slot.
func (a *Agent) fetchArtifact(ctx context.Context, m *member, art release.Artifact) (io.ReadCloser, error) {
	m.mu.Lock()
	id, keys, cert := m.id, m.keys, m.cert
	pins := pinsOf(m.id, m.roots)
	m.mu.Unlock()
	tc := &tls.Config{MinVersion: tls.VersionTLS13, ServerName: serverNameForCluster(m.cluster), InsecureSkipVerify: true, //nolint:gosec // pinned below
		VerifyConnection: func(cs tls.ConnectionState) error { return apiclient.VerifyPinnedChainAny(cs.PeerCertificates, pins) },
		Certificates:     []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: keys.Signing, Leaf: cert}}}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	var last error
	for _, u := range id.AuthorityURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+strings.TrimPrefix(u, "https://")+agentapi.ArtifactPath(art.SHA256), nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			last = fmt.Errorf("%s answered %s", u, resp.Status)
			continue
		}
		return resp.Body, nil
	}
	if last == nil {
		last = errors.New("no authority address")
	}
	return nil, last
}

// previousVersion is the launcher's previous slot ("" without slots or
// before a first update).
func (a *Agent) previousVersion() string {
	if a.o.Update.SlotsDir == "" {
		return ""
	}
	v, err := (updater.Slots{Dir: a.o.Update.SlotsDir}).Previous()
	if err != nil {
		return ""
	}
	return v
}

// updateStatus is the update state every heartbeat carries: the last
// report, or (before any) what the slots and pending_update say: a trial
// not yet promoted is health_checking, an attempt that was rolled back is
// rolled_back with its failure, otherwise the agent runs its version.
func (a *Agent) updateStatus() []updateReport {
	a.upMu.Lock()
	var out []updateReport
	for _, p := range slices.Sorted(maps.Keys(a.wlStatus)) {
		if p != release.ProductNodeAgent && len(out) < agentapi.MaxHeartbeatUpdates-1 {
			out = append(out, a.wlStatus[p])
		}
	}
	a.upMu.Unlock()
	if !reportableVersion(a.o.AgentVersion) {
		return out // the authority would refuse it: no agent entry
	}
	return append(a.agentUpdateStatus(), out...)
}

func (a *Agent) agentUpdateStatus() []updateReport {
	a.upMu.Lock()
	defer a.upMu.Unlock()
	if a.upState == nil {
		cur := a.o.AgentVersion
		st := updateReport{Product: release.ProductNodeAgent, CurrentVersion: cur, State: "running", PreviousVersion: a.previousVersion()}
		if a.o.Update.SlotsDir != "" {
			if _, u, ok, err := updater.FindPending(a.st); err == nil && ok {
				switch {
				case u.State == updater.StepRolledBack:
					st.State, st.TargetVersion, st.FromVersion, st.LastFailure = "rolled_back", u.Version, u.PreviousVersion, u.LastFailure
				case u.Version == cur && (u.State == updater.StepHealthChecking || u.State == updater.StepSwitchRequested):
					st.State, st.TargetVersion, st.FromVersion = "health_checking", cur, u.PreviousVersion
				}
			}
		}
		if len(st.LastFailure) > 500 {
			st.LastFailure = st.LastFailure[:500]
		}
		a.upState = &st
	}
	return []updateReport{*a.upState}
}

// reportableVersion: 1..64 printable characters without spaces (what the
// authority accepts in a heartbeat's update state).
func reportableVersion(v string) bool {
	if v == "" || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

func (o *UpdateOptions) defaults() {
	if o.OS == "" {
		o.OS = goruntime.GOOS
	}
	if o.Arch == "" {
		o.Arch = goruntime.GOARCH
	}
}
