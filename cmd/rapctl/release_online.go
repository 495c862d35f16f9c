package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/rap-fabric/core/apiclient"
	"github.com/rap-fabric/core/release"
)

// releaseCommands talk to the authorities (version storage).
var releaseCommands = []cmd{
	{path: "release roots show", help: "the registered release root keys and threshold", flags: noFlags(get("/v1/releases/roots")),
		table: []string{"registered", "version", "threshold", "set_by", "reason", "raft_index"}, single: true},
	{path: "release roots set", args: "ROOT.pub…", help: "register or replace the release root keys (--threshold N --prev-version V --reason R; fenced, Raft, step-up)", flags: func(fs *flag.FlagSet) builder {
		threshold := fs.Int("threshold", 0, "distinct root signatures a key set needs (required)")
		prev := fs.Uint64("prev-version", 0, "the version being replaced (0: first registration)")
		reason := fs.String("reason", "", "why (required; audited)")
		return func() (string, string, any, error) {
			if len(positional) == 0 || *threshold == 0 || strings.TrimSpace(*reason) == "" {
				return "", "", nil, errArgs("ROOT.pub… --threshold N --reason R [--prev-version V]")
			}
			keys, roles, err := readPublicKeys(strings.Join(positional, ","))
			if err != nil {
				return "", "", nil, err
			}
			for i, r := range roles {
				if r != release.RoleRoot {
					return "", "", nil, fmt.Errorf("%s is a %s key, not a root key", positional[i], r)
				}
			}
			raw := make([][]byte, len(keys))
			for i, k := range keys {
				raw[i] = k
			}
			return http.MethodPut, "/v1/releases/roots", map[string]any{"prev_version": *prev, "threshold": *threshold, "keys": raw, "reason": *reason}, nil
		}
	}, table: []string{"version", "threshold", "set_by", "reason", "raft_index"}, single: true},
	{path: "release keyset publish", args: "FILE", help: "publish a root-signed key set (fenced, step-up)", flags: func(fs *flag.FlagSet) builder {
		return func() (string, string, any, error) {
			if len(positional) != 1 {
				return "", "", nil, errArgs("FILE")
			}
			e, err := readEnvelope(positional[0])
			if err != nil {
				return "", "", nil, err
			}
			return http.MethodPost, "/v1/releases/key-sets", e, nil
		}
	}, table: []string{"version", "digest", "signing_key_ids", "revoked_key_ids", "expires_at"}, single: true},
	{path: "release keyset list", help: "published release-signing key sets, newest first", flags: listFlags("/v1/releases/key-sets"),
		table: []string{"version", "signing_key_ids", "revoked_key_ids", "roots_version", "expires_at", "published_by"}},
	{path: "release list", help: "releases, newest first (--product to filter)", flags: listFlags("/v1/releases", "product"),
		table: []string{"id", "product", "version", "channels", "status", "available", "signing_key_id", "published_at"}},
	{path: "release show", args: "RELEASE", help: "a release (id or product@version) with its manifest and upload progress", flags: withArgs(http.MethodGet, "/v1/releases/{release}", "release")},
	{path: "release artifact", args: "SHA256", help: "an artifact's upload state", flags: withArgs(http.MethodGet, "/v1/releases/artifacts/{sha256}", "sha256"),
		table: []string{"sha256", "size", "received", "complete"}, single: true},
}

func init() { commands = append(commands, releaseCommands...) }

const releasePublishHelp = `  release publish MANIFEST ARTIFACT…             publish a signed manifest and upload its artifacts (resumable; progress on stderr; --chunk-size)`

// artifactState is the upload state of an artifact (GET /v1/releases/artifacts/{sha256}).
type artifactState struct {
	SHA256   string `json:"sha256"`
	Size     int64  `json:"size"`
	Received int64  `json:"received"`
	Complete bool   `json:"complete"`
}

// releasePublish publishes MANIFEST, then uploads every ARTIFACT named by
// it, each from where the authorities' stored bytes end (so an interrupted
// publish is simply run again). Files are read chunk by chunk, never whole.
func releasePublish(ctx context.Context, c *apiclient.Client, args []string, out, progress io.Writer) error {
	fs := flag.NewFlagSet("release publish", flag.ContinueOnError)
	chunk := fs.Int("chunk-size", 512<<10, "bytes per upload request (at most 512 KiB)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return errors.New("usage: rapctl release publish MANIFEST ARTIFACT… [--chunk-size N]")
	}
	if *chunk < 1 || *chunk > 512<<10 {
		return errors.New("--chunk-size must be 1..524288")
	}
	env, err := readEnvelope(pos[0])
	if err != nil {
		return err
	}
	if env.Kind != release.KindManifest {
		return fmt.Errorf("%s is not a release manifest", pos[0])
	}
	m, err := release.DecodeManifest(env.Payload)
	if err != nil {
		return err
	}
	// Match the files to the manifest's artifacts by content before sending anything.
	files := map[string]string{}
	for _, p := range pos[1:] {
		sum, n, err := hashFile(p)
		if err != nil {
			return err
		}
		found := false
		for _, a := range m.Artifacts {
			if a.SHA256 == sum && a.Size == n {
				files[a.SHA256], found = p, true
			}
		}
		if !found {
			return fmt.Errorf("%s (sha256 %s, %d bytes) is not an artifact of %s %s", p, sum, n, m.Product, m.Version)
		}
	}
	var rel struct {
		ID string `json:"id"`
	}
	if err := c.Do(ctx, http.MethodPost, "/v1/releases", env, &rel, map[string]string{"Idempotency-Key": "publish-" + strings.TrimPrefix(env.Digest(), "sha256:")[:32]}); err != nil {
		return err
	}
	fmt.Fprintf(out, "release %s %s published (id %s, manifest %s)\n", m.Product, m.Version, rel.ID, env.Digest())
	for _, a := range m.Artifacts {
		path, ok := files[a.SHA256]
		if !ok {
			var st artifactState
			if err := c.Do(ctx, http.MethodGet, "/v1/releases/artifacts/"+a.SHA256, nil, &st, nil); err != nil {
				return err
			}
			if !st.Complete {
				fmt.Fprintf(out, "%s: not given and not stored yet (%d of %d bytes): run publish again with its file\n", a.Platform(), st.Received, st.Size)
			} else {
				fmt.Fprintf(out, "%s: already stored\n", a.Platform())
			}
			continue
		}
		if err := uploadArtifact(ctx, c, a, path, *chunk, progress); err != nil {
			return fmt.Errorf("%s: %w", a.Platform(), err)
		}
		fmt.Fprintf(out, "%s: %s stored and verified (%d bytes)\n", a.Platform(), a.ContentID(), a.Size)
	}
	return nil
}

func uploadArtifact(ctx context.Context, c *apiclient.Client, a release.Artifact, path string, chunk int, progress io.Writer) error {
	var st artifactState
	if err := c.Do(ctx, http.MethodGet, "/v1/releases/artifacts/"+a.SHA256, nil, &st, nil); err != nil {
		return err
	}
	if st.Complete {
		fmt.Fprintf(progress, "%s %s: already stored\n", a.Platform(), short(a.SHA256))
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, chunk)
	start := time.Now()
	off := st.Received
	if off > 0 {
		fmt.Fprintf(progress, "%s %s: resuming at byte %d\n", a.Platform(), short(a.SHA256), off)
	}
	for off < a.Size {
		n, err := f.ReadAt(buf[:min(int64(chunk), a.Size-off)], off)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s is shorter than the manifest says", path)
		}
		var next artifactState
		err = c.Do(ctx, http.MethodPut, "/v1/releases/artifacts/"+a.SHA256+"/chunks/"+url.PathEscape(fmt.Sprint(off)), map[string]any{"data": buf[:n]}, &next, nil)
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Code == "conflict" {
			// Someone else (or an earlier attempt whose answer was lost) moved
			// the upload on: continue from what is stored.
			if r, ok := ae.Details["received"].(float64); ok {
				off = int64(r)
				continue
			}
		}
		if err != nil {
			return err
		}
		off = next.Received
		if next.Complete {
			off = a.Size
		}
		pct := float64(off) * 100 / float64(a.Size)
		rate := float64(off-st.Received) / max(time.Since(start).Seconds(), 1e-3) / (1 << 20)
		fmt.Fprintf(progress, "%s %s: %d/%d bytes (%.1f%%, %.1f MiB/s)\n", a.Platform(), short(a.SHA256), off, a.Size, pct, rate)
	}
	return nil
}

func short(sha string) string {
	if _, err := hex.DecodeString(sha); err != nil || len(sha) < 12 {
		return sha
	}
	return sha[:12]
}
