package daemon_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/authority"
	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/release"
	"github.com/rap-fabric/core/snapshot"
	"github.com/rap-fabric/core/store"
)

// releaseFixture registers roots 1..3 (2 of 3) and key set v1 (signing key
// 10) and publishes releases with their (one-chunk) artifacts.
type releaseFixture struct {
	t     *testing.T
	owner *apiclient.Client
}

func newReleaseFixture(t *testing.T, owner *apiclient.Client) *releaseFixture {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	require.NoError(t, owner.Do(ctx, http.MethodPut, "/v1/releases/roots", authority.SetRootsRequest{Threshold: 2,
		Keys: [][]byte{relPub(1), relPub(2), relPub(3)}, Reason: "bootstrap"}, nil, nil))
	env, err := release.NewKeySetEnvelope(release.KeySet{Version: 1, SigningKeys: []release.SigningKey{{Public: relPub(10)}},
		IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)})
	require.NoError(t, err)
	for _, k := range []byte{1, 2} {
		env, err = release.Sign(env, relKey(k))
		require.NoError(t, err)
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases/key-sets", env, nil, nil))
	return &releaseFixture{t: t, owner: owner}
}

// publish publishes rap-node-agent@version with a small artifact and
// uploads it; it returns the artifact's sha256.
func (f *releaseFixture) publish(version string, pgSchema uint32) string {
	t, ctx := f.t, context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	body := []byte("rap-node-agent " + version + " linux/amd64")
	sum := sha256.Sum256(body)
	sha := hex.EncodeToString(sum[:])
	m := release.Manifest{Product: release.ProductNodeAgent, Version: version, Channels: []release.Channel{release.ChannelCandidate},
		Artifacts:  []release.Artifact{{OS: "linux", Arch: "amd64", SHA256: sha, Size: int64(len(body))}},
		Migration:  release.Migration{PostgresSchema: pgSchema},
		Provenance: release.Provenance{SourceRevision: "rev-" + version, BuildTime: now}, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
	env, err := release.NewManifestEnvelope(m)
	require.NoError(t, err)
	env, err = release.Sign(env, relKey(10))
	require.NoError(t, err)
	require.NoError(t, f.owner.Do(ctx, http.MethodPost, "/v1/releases", env, nil, nil))
	var st store.ReleaseArtifact
	require.NoError(t, f.owner.Do(ctx, http.MethodPut, "/v1/releases/artifacts/"+sha+"/chunks/0", map[string]any{"data": body}, &st, nil))
	require.True(t, st.Complete)
	return sha
}

// fleet is a set of enrolled agents that read their desired versions from
// their signed snapshots and report update states, as an agent would.
type fleet struct {
	t      *testing.T
	agents []*snapAgent
	last   map[string]snapshot.Snapshot
}

// desired returns the agent's desired rap-node-agent version from its newest
// signed snapshot (waiting up to wait seconds for a newer one).
func (f *fleet) desired(a *snapAgent, wait int) (snapshot.DesiredVersion, *snapshot.Updates) {
	if s, ok := a.fetch(f.t, a.c, wait); ok {
		f.last[a.nodeID] = s
	}
	u := f.last[a.nodeID].Body.Updates
	if u == nil {
		return snapshot.DesiredVersion{}, nil
	}
	for _, d := range u.Desired {
		if d.Product == release.ProductNodeAgent {
			return d, u
		}
	}
	return snapshot.DesiredVersion{}, u
}

// waitDesired waits until every agent's snapshot satisfies cond.
func (f *fleet) waitDesired(what string, cond func(a *snapAgent, d snapshot.DesiredVersion, u *snapshot.Updates) bool) {
	f.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range f.agents {
		for {
			d, u := f.desired(a, 0)
			if cond(a, d, u) {
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("%s: agent %s has desired %+v", what, a.name, d)
			}
			f.desired(a, 2)
			if d, u = f.desired(a, 0); cond(a, d, u) {
				break
			}
		}
	}
}

func (f *fleet) report(a *snapAgent, current, target, state, failure string) {
	f.t.Helper()
	require.NoError(f.t, a.c.Do(context.Background(), http.MethodPost, "/v1/agent/updates", authority.UpdateReport{Product: release.ProductNodeAgent,
		CurrentVersion: current, TargetVersion: target, State: state, LastFailure: failure}, nil, nil))
}

func rolloutState(t *testing.T, owner *apiclient.Client, rid string) authority.RolloutView {
	var v authority.RolloutView
	require.NoError(t, owner.Do(context.Background(), http.MethodGet, "/v1/clusters/fleet/rollouts/"+rid, nil, &v, nil))
	return v
}

func waitRollout(t *testing.T, g *authtest.Group, owner *apiclient.Client, rid, state string, wave int) authority.RolloutView {
	t.Helper()
	var v authority.RolloutView
	g.Eventually(30*time.Second, fmt.Sprintf("rollout %s reaches %s at wave %d", rid, state, wave), func() bool {
		v = rolloutState(t, owner, rid)
		return v.State == state && v.CurrentWave == wave
	})
	return v
}

// TestRollouts drives staged rollouts through the owner API with enrolled
// agents that take their desired versions from their signed snapshots and
// report their update state: a good release goes canary → waves →
// completed (and becomes the last known good); a broken one halts at the
// canary without reaching the next wave and is rolled back with a signed
// downgrade allowance; blocklist, pin and the schema guard are honoured;
// every decision is audited.
func TestRollouts(t *testing.T) {
	g := authtest.New(t, 1)
	ctx := context.Background()
	g.Leader(10 * time.Second)
	owner := g.Client(g.DS...)
	rel := newReleaseFixture(t, owner)
	rel.publish("1.0.0", 0)
	rel.publish("1.1.0", 0)
	brokenSHA := rel.publish("1.2.0", 0)
	rel.publish("1.3.0", 9999)

	_, pin := mkClusterSnap(t, owner, "fleet")
	var tok struct {
		Token string `json:"token"`
	}
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/join-tokens", map[string]any{"cluster": "fleet", "max_uses": 4, "auto_approve": true, "allowed_roles": []string{"relay-node"}, "description": "fleet"}, &tok, nil))
	f := &fleet{t: t, last: map[string]snapshot.Snapshot{}}
	for i := range 4 {
		f.agents = append(f.agents, enrollSnapAgent(t, g, pin, tok.Token, fmt.Sprintf("f%d", i), []string{"can_route_mesh"}))
	}
	// Every snapshot carries the release roots; nobody has a desired version yet.
	f.waitDesired("roots in snapshots", func(_ *snapAgent, d snapshot.DesiredVersion, u *snapshot.Updates) bool {
		return u != nil && u.ReleaseRoots.Threshold == 2 && len(u.ReleaseRoots.Keys) == 3 && d.Version == ""
	})

	start := func(version string, canary, wavePct int) (authority.RolloutView, error) {
		var v authority.RolloutView
		err := owner.Do(ctx, http.MethodPost, "/v1/clusters/fleet/rollouts", map[string]any{"product": release.ProductNodeAgent, "version": version,
			"canary_count": canary, "wave_percent": wavePct, "soak_seconds": 0, "failure_threshold": 1, "update_deadline_seconds": 60}, &v, nil)
		return v, err
	}
	// The agents all run 1.0.0: a one-wave rollout of it completes and makes
	// it the last known good.
	r0, err := start("1.0.0", 4, 100)
	require.NoError(t, err)
	f.waitDesired("1.0.0 everywhere", func(_ *snapAgent, d snapshot.DesiredVersion, _ *snapshot.Updates) bool { return d.Version == "1.0.0" })
	for _, a := range f.agents {
		f.report(a, "1.0.0", "1.0.0", "running", "")
	}
	waitRollout(t, g, owner, r0.ID, "completed", 0)

	// Good release: canary (1), then waves of 50 % (2, then 1).
	r1, err := start("1.1.0", 1, 50)
	require.NoError(t, err)
	require.Len(t, r1.Waves, 3)
	require.Equal(t, "1.0.0", r1.RollbackVersion)
	_, err = start("1.1.0", 1, 50)
	require.Equal(t, "conflict", apiErr(err).Code, "one open rollout per product and cluster")
	byNode := map[string]*snapAgent{}
	for _, a := range f.agents {
		byNode[a.nodeID] = a
	}
	for wave := range r1.Waves {
		inWave := map[string]bool{}
		for _, n := range r1.Waves[wave].Nodes {
			inWave[n.NodeID] = true
		}
		waitRollout(t, g, owner, r1.ID, "running", wave)
		f.waitDesired(fmt.Sprintf("wave %d", wave), func(a *snapAgent, d snapshot.DesiredVersion, _ *snapshot.Updates) bool {
			w := -1
			for i, wv := range r1.Waves {
				for _, n := range wv.Nodes {
					if n.NodeID == a.nodeID {
						w = i
					}
				}
			}
			if w <= wave {
				return d.Version == "1.1.0" && d.RolloutID == r1.ID && d.Wave == w && !d.AllowDowngrade && d.DeadlineSeconds == 60
			}
			return d.Version == "" // later waves are not asked yet
		})
		for n := range inWave {
			f.report(byNode[n], "1.0.0", "1.1.0", "downloading", "")
			f.report(byNode[n], "1.1.0", "1.1.0", "running", "")
		}
	}
	done := waitRollout(t, g, owner, r1.ID, "completed", 2)
	for _, w := range done.Waves {
		require.Equal(t, len(w.Nodes), w.Succeeded)
	}

	// Broken release: the canary rolls itself back; the rollout halts at
	// wave 0 and nobody else is ever asked to take 1.2.0.
	r2, err := start("1.2.0", 1, 50)
	require.NoError(t, err)
	require.Equal(t, "1.1.0", r2.RollbackVersion, "the completed rollout made 1.1.0 the last known good")
	canary := byNode[r2.Waves[0].Nodes[0].NodeID]
	f.waitDesired("broken canary", func(a *snapAgent, d snapshot.DesiredVersion, _ *snapshot.Updates) bool {
		if a == canary {
			return d.Version == "1.2.0"
		}
		return d.Version == ""
	})
	f.report(canary, "1.1.0", "1.2.0", "health_checking", "")
	f.report(canary, "1.1.0", "1.2.0", "rolled_back", "new agent did not heartbeat within 60s")
	halted := waitRollout(t, g, owner, r2.ID, "halted", 0)
	require.Contains(t, halted.StateReason, "1 node(s) failed")
	require.Equal(t, "failed", halted.Waves[0].Nodes[0].Outcome)
	require.Equal(t, "new agent did not heartbeat within 60s", halted.Waves[0].Nodes[0].LastFailure)
	f.waitDesired("halted: nobody asked", func(_ *snapAgent, d snapshot.DesiredVersion, _ *snapshot.Updates) bool { return d.Version == "" })

	// Roll back: everyone to the last known good, downgrade allowed by the signed snapshot.
	var v authority.RolloutView
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/fleet/rollouts/"+r2.ID+"/rollback", map[string]string{"reason": "canary failed"}, &v, nil))
	require.Equal(t, "rolled_back", v.State)
	f.waitDesired("rolled back", func(_ *snapAgent, d snapshot.DesiredVersion, _ *snapshot.Updates) bool {
		return d.Version == "1.1.0" && d.AllowDowngrade
	})
	err = owner.Do(ctx, http.MethodPost, "/v1/clusters/fleet/rollouts/"+r2.ID+"/pause", map[string]string{"reason": "x"}, nil, nil)
	require.Equal(t, "conflict", apiErr(err).Code)

	// Blocklist 1.2.0: in every snapshot, its bytes no longer served, no new rollout of it.
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/releases/rap-node-agent@1.2.0/blocklist", map[string]string{"reason": "broken start"}, nil, nil))
	f.waitDesired("blocklist", func(_ *snapAgent, _ snapshot.DesiredVersion, u *snapshot.Updates) bool {
		return u != nil && len(u.Blocklist) == 1 && u.Blocklist[0].Version == "1.2.0"
	})
	code, _ := artifactDownloader(t, f.agents[0], g)(brokenSHA, 0)
	require.Equal(t, http.StatusNotFound, code)
	_, err = start("1.2.0", 1, 50)
	require.Equal(t, release.ReasonBlocklisted, apiErr(err).Details["reason"])

	// The schema guard: 1.3.0 needs a control-plane schema that is not applied.
	_, err = start("1.3.0", 1, 50)
	require.Equal(t, "schema_not_applied", apiErr(err).Details["reason"])

	// Pause and resume a rollout of 1.1.0 again (re-rollout after the rollback) — then pin 1.0.0 over it.
	r3, err := start("1.1.0", 1, 50)
	require.NoError(t, err)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/fleet/rollouts/"+r3.ID+"/pause", map[string]string{"reason": "hold"}, &v, nil))
	require.Equal(t, "paused", v.State)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/fleet/rollouts/"+r3.ID+"/resume", map[string]string{"reason": "go"}, &v, nil))
	require.Equal(t, "running", v.State)
	require.NoError(t, owner.Do(ctx, http.MethodPost, "/v1/clusters/fleet/rollouts/pin", map[string]string{"product": release.ProductNodeAgent, "version": "1.0.0", "reason": "incident"}, &v, nil))
	require.Equal(t, "pinned", v.State)
	require.Equal(t, r3.ID, v.ID, "the open rollout became the pin")
	f.waitDesired("pinned", func(_ *snapAgent, d snapshot.DesiredVersion, _ *snapshot.Updates) bool {
		return d.Version == "1.0.0" && d.AllowDowngrade
	})

	// A node's update state is visible.
	var runs []store.UpdateRun
	require.NoError(t, owner.Do(ctx, http.MethodGet, "/v1/clusters/fleet/nodes/"+canary.nodeID+"/updates", nil, &runs, nil))
	require.Len(t, runs, 1)
	require.Equal(t, "rolled_back", runs[0].State)
	// Bad reports are refused with a typed error.
	err = canary.c.Do(ctx, http.MethodPost, "/v1/agent/updates", authority.UpdateReport{Product: release.ProductNodeAgent, CurrentVersion: "1.0.0", TargetVersion: "1.1.0", State: "exploded"}, nil, nil)
	require.Equal(t, "invalid_argument", apiErr(err).Code)

	for _, action := range []string{"rollout.start", "rollout.advance", "rollout.complete", "rollout.halt", "rollout.rollback", "rollout.pause",
		"rollout.resume", "rollout.pin", "release.blocklist"} {
		var n int
		require.NoError(t, g.DS[0].DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = $1 AND outcome = 'ok'`, action).Scan(&n))
		require.Positive(t, n, action)
	}
	var refused int
	require.NoError(t, g.DS[0].DB.Pool.QueryRow(ctx, `SELECT count(*) FROM cluster_audit_events WHERE action = 'rollout.start' AND outcome <> 'ok'`).Scan(&refused))
	require.GreaterOrEqual(t, refused, 2, "refused starts are audited")
}
