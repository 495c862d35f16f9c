package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/internal/authtest"
	"github.com/rap-fabric/core/store"
)

// cancelAfter is a progress writer that cancels a context after n lines
// (an operator's ^C in the middle of an upload).
type cancelAfter struct {
	buf    bytes.Buffer
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if c.n--; c.n == 0 {
		c.cancel()
	}
	return len(p), nil
}

// The online release commands against a real authority: roots registered,
// a key set published, a release published and its artifact uploaded,
// interrupted and resumed from where the stored bytes end, with progress.
func TestReleasePublishResumes(t *testing.T) {
	t.Setenv("RAPCTL_CONFIG", filepath.Join(t.TempDir(), "none.json"))
	g := authtest.New(t, 1)
	g.Leader(10 * time.Second)
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	conn := []string{"--server", g.DS[0].APIAddr(), "--token", g.Token, "--ca-pin", g.Pin}
	cli := func(args ...string) error { return realMain(append(append([]string{}, conn...), args...)) }

	for _, k := range []struct{ name, role string }{{"r1", "root"}, {"r2", "root"}, {"s1", "signing"}} {
		_, err := run(t, "keygen", "--role", k.role, "--out", p(k.name))
		require.NoError(t, err)
	}
	require.NoError(t, cli("release", "roots", "set", p("r1.pub"), p("r2.pub"), "--threshold", "2", "--reason", "bootstrap"))
	require.Error(t, cli("release", "roots", "set", p("s1.pub"), "--threshold", "1", "--prev-version", "1", "--reason", "x"), "a signing key is not a root")
	_, err := run(t, "keyset create", "--version", "1", "--signing-key", p("s1.pub"), "--out", p("ks.json"))
	require.NoError(t, err)
	for _, r := range []string{"r1", "r2"} {
		_, err = run(t, "sign", "--key", p(r), p("ks.json"))
		require.NoError(t, err)
	}
	require.NoError(t, cli("release", "keyset", "publish", p("ks.json")))

	art := p("agent")
	require.NoError(t, os.WriteFile(art, bytes.Repeat([]byte("agent-binary-"), 25_000), 0o755)) // 325 000 bytes
	_, err = run(t, "manifest create", "--version", "1.0.0", "--channels", "candidate", "--artifact", "linux/amd64="+art, "--source-revision", "r1", "--out", p("m.json"))
	require.NoError(t, err)
	_, err = run(t, "sign", "--key", p("s1"), p("m.json"))
	require.NoError(t, err)

	c := g.Client(g.DS...)
	// A file that is not in the manifest is refused before anything is sent.
	require.NoError(t, os.WriteFile(p("other"), []byte("other"), 0o644))
	var out bytes.Buffer
	err = releasePublish(context.Background(), c, []string{p("m.json"), p("other")}, &out, &out)
	require.ErrorContains(t, err, "is not an artifact of")

	// Interrupted after the second chunk…
	ctx, cancel := context.WithCancel(context.Background())
	prog := &cancelAfter{n: 2, cancel: cancel}
	err = releasePublish(ctx, c, []string{p("m.json"), art, "--chunk-size", "100000"}, &out, prog)
	require.Error(t, err)
	require.True(t, errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "context canceled"), err)
	var st store.ReleaseArtifact
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/releases/rap-node-agent@1.0.0", nil, nil, nil))
	// …resumed by running it again.
	out.Reset()
	var progress bytes.Buffer
	require.NoError(t, releasePublish(context.Background(), c, []string{p("m.json"), art, "--chunk-size", "100000"}, &out, &progress))
	require.Contains(t, progress.String(), "resuming at byte 200000")
	require.Contains(t, progress.String(), "325000/325000 bytes (100.0%")
	require.Contains(t, out.String(), "stored and verified (325000 bytes)")
	var rel struct {
		Available bool `json:"available"`
		Platforms []struct {
			SHA256 string `json:"sha256"`
		} `json:"platforms"`
	}
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/releases/rap-node-agent@1.0.0", nil, &rel, nil))
	require.True(t, rel.Available)
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/releases/artifacts/"+rel.Platforms[0].SHA256, nil, &st, nil))
	require.True(t, st.Complete)
	// Publishing again is harmless.
	progress.Reset()
	require.NoError(t, releasePublish(context.Background(), c, []string{p("m.json"), art}, &out, &progress))
	require.Contains(t, progress.String(), "already stored")
	require.NoError(t, cli("release", "list"))
	require.NoError(t, cli("release", "show", "rap-node-agent@1.0.0"))

	// Rollout commands.
	require.NoError(t, cli("cluster", "create", "fleet"))
	require.NoError(t, cli("rollout", "start", "fleet", "rap-node-agent", "1.0.0", "--canary", "2", "--wave-percent", "50", "--soak", "0s", "--deadline", "30s"))
	var ro struct {
		Items []store.Rollout `json:"items"`
	}
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/clusters/fleet/rollouts", nil, &ro, nil))
	require.Len(t, ro.Items, 1)
	x := ro.Items[0]
	require.Equal(t, 2, x.CanaryCount)
	require.Equal(t, 0, x.SoakSeconds, "--soak 0s is honoured, not the default")
	require.Equal(t, 30, x.DeadlineSeconds)
	require.NoError(t, cli("rollout", "status", "fleet", x.ID))
	require.Error(t, cli("rollout", "pause", "fleet", x.ID), "--reason is required")
	require.NoError(t, cli("rollout", "pause", "fleet", x.ID, "--reason", "hold"))
	require.NoError(t, cli("rollout", "list", "fleet"))
	require.NoError(t, cli("rollout", "blocklist", "rap-node-agent@1.0.0", "--reason", "bad"))
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/clusters/fleet/rollouts", nil, &ro, nil))
	require.Equal(t, "halted", ro.Items[0].State, "blocklisting the target halts its rollout")
	require.ErrorContains(t, cli("rollout", "rollback", "fleet", x.ID, "--reason", "x"), "no last-known-good release")

	// Channel assignments.
	require.NoError(t, cli("release", "channel", "set", "fleet", "rap-node-agent", "stable", "--reason", "default ring"))
	require.Error(t, cli("release", "channel", "set", "fleet", "rap-node-agent", "beta"), "unknown channel")
	require.Error(t, cli("release", "channel", "set", "fleet", "rap-node-agent", "stable", "--node", store.NewID()), "not a member")
	require.Error(t, cli("release", "channel", "set", "fleet", "rap-node-agent", "stable", "--node", "a", "--group", "b"), "one scope")
	require.NoError(t, cli("release", "channel", "list", "fleet"))
	var chans struct {
		Items []store.ChannelAssignment `json:"items"`
	}
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/clusters/fleet/release-channels", nil, &chans, nil))
	require.Len(t, chans.Items, 1)
	require.Equal(t, "cluster", chans.Items[0].ScopeKind)
	require.Equal(t, "stable", chans.Items[0].Channel)
	require.NoError(t, cli("release", "channel", "unset", "fleet", "rap-node-agent", "--reason", "done"))
	require.Error(t, cli("release", "channel", "unset", "fleet", "rap-node-agent"), "nothing left to unset")
	require.NoError(t, c.Do(context.Background(), http.MethodGet, "/v1/clusters/fleet/release-channels", nil, &chans, nil))
	require.Empty(t, chans.Items)
}
