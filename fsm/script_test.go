package fsm

import (
	"bytes"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/rap-fabric/core/domain"
)

var update = flag.Bool("update", false, "rewrite testdata/*.txt with actual output")

// A script is a sequence of blocks:
//
//	# optional comment lines
//	<directive> [key=value ...]
//	----
//	<expected output lines>
//	<blank line>
//
// Directives:
//
//	apply <command> [rid=ID] [fields...]  encode and apply one command
//	raw <hex>                              apply raw log data
//	dump                                   print the state
//	restore                                snapshot → persist → restore into a new FSM,
//	                                       check the dumps are equal, continue on the new FSM
//	capacity <n>                           start over with an empty FSM of that idempotency capacity
type scriptBlock struct {
	comments []string
	cmd      string
	expected string
	line     int
}

func parseScript(t *testing.T, path string) []scriptBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(string(data), "\n")
	var blocks []scriptBlock
	var cur scriptBlock
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.TrimSpace(l) == "":
			continue
		case strings.HasPrefix(l, "#"):
			cur.comments = append(cur.comments, l)
			continue
		}
		cur.cmd, cur.line = l, i+1
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("%s:%d: expected ---- after directive", path, cur.line)
		}
		var exp []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			exp = append(exp, lines[i])
		}
		cur.expected = strings.Join(exp, "\n")
		blocks = append(blocks, cur)
		cur = scriptBlock{}
	}
	return blocks
}

// splitArgs splits `a b=c d="x y"` into words, honouring Go-quoted values.
func splitArgs(s string) ([]string, error) {
	var out []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		i := 0
		for i < len(s) && s[i] != ' ' && s[i] != '"' {
			i++
		}
		word := s[:i]
		s = s[i:]
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, err
			}
			uq, _ := strconv.Unquote(q)
			word += uq
			s = s[len(q):]
		}
		out = append(out, word)
	}
	return out, nil
}

func buildCommand(kind string, kv map[string]string) (Command, error) {
	at := func() time.Time {
		if kv["at"] == "" {
			return time.Time{}
		}
		tm, err := time.Parse(time.RFC3339Nano, kv["at"])
		if err != nil {
			panic(err)
		}
		return tm
	}
	u64 := func(k string) uint64 {
		if kv[k] == "" {
			return 0
		}
		n, err := strconv.ParseUint(kv[k], 10, 64)
		if err != nil {
			panic(err)
		}
		return n
	}
	b := func(k string) []byte {
		if kv[k] == "" {
			return nil
		}
		return []byte(kv[k])
	}
	switch kind {
	case "claim-epoch":
		return ClaimEpoch{LeaderID: kv["leader"], Term: u64("term"), At: at()}, nil
	case "create-ca":
		return CreateClusterCA{ClusterID: kv["cluster"], KeyID: kv["key"], PublicKey: b("pub"),
			SealedPrivateKey: b("sealed"), CertDER: b("cert"), At: at()}, nil
	case "rotate-ca":
		return RotateClusterCA{ClusterID: kv["cluster"], KeyID: kv["key"], PublicKey: b("pub"),
			SealedPrivateKey: b("sealed"), CertDER: b("cert"), At: at()}, nil
	case "set-partition":
		return SetPartition{ClusterID: kv["cluster"], State: domain.PartitionState(kv["state"]),
			Reason: kv["reason"], Actor: kv["actor"], Epoch: u64("epoch"), At: at()}, nil
	case "upsert-member":
		return UpsertMember{ID: kv["id"], RaftAddr: kv["raft"], APIAddr: kv["api"], Suffrage: Suffrage(kv["suffrage"])}, nil
	case "remove-member":
		return RemoveMember{ID: kv["id"]}, nil
	case "set-release-roots":
		return buildSetReleaseRoots(kv, u64("prev"), at())
	case "set-audit-checkpoint", "reanchor-audit":
		return buildAuditCommand(kind, kv, at())
	}
	return nil, fmt.Errorf("unknown command %q", kind)
}

func renderResult(r Result) string {
	var b strings.Builder
	if r.Err == nil {
		b.WriteString("ok")
	} else {
		b.WriteString("err=" + r.Err.Error())
	}
	fmt.Fprintf(&b, " index=%d epoch=%d", r.Index, r.Epoch)
	if r.Replayed {
		b.WriteString(" replayed")
	}
	return b.String()
}

// encodeUnchecked bypasses Validate so scripts can feed invalid commands to Apply.
func encodeUnchecked(rid string, c Command) []byte {
	body, err := jsonMarshal(c)
	if err != nil {
		panic(err)
	}
	env, err := jsonMarshal(envelope{RequestID: rid, Cmd: body})
	if err != nil {
		panic(err)
	}
	return append([]byte{Version1, byte(c.Type())}, env...)
}

func snapshotRestore(t *testing.T, f *FSM) *FSM {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	sink := &memSink{}
	require.NoError(t, snap.Persist(sink))
	snap.Release()
	g := New(Options{IdempotencyCapacity: f.capacity})
	require.NoError(t, g.Restore(sink.reader()))
	return g
}

func runScript(t *testing.T, path string) {
	blocks := parseScript(t, path)
	f := New(Options{})
	var index uint64
	var out bytes.Buffer
	for bi, blk := range blocks {
		words, err := splitArgs(blk.cmd)
		require.NoError(t, err, "%s:%d", path, blk.line)
		kv := map[string]string{}
		for _, w := range words[1:] {
			if k, v, ok := strings.Cut(w, "="); ok {
				kv[k] = v
			}
		}
		var got string
		switch words[0] {
		case "apply":
			require.GreaterOrEqual(t, len(words), 2, "%s:%d", path, blk.line)
			c, err := buildCommand(words[1], kv)
			require.NoError(t, err, "%s:%d", path, blk.line)
			index++
			got = renderResult(f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: encodeUnchecked(kv["rid"], c)}).(Result))
		case "raw":
			data, err := hex.DecodeString(words[1])
			require.NoError(t, err, "%s:%d", path, blk.line)
			index++
			got = renderResult(f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(Result))
		case "dump":
			got = strings.TrimRight(f.Dump(), "\n")
		case "restore":
			g := snapshotRestore(t, f)
			if a, b := f.Dump(), g.Dump(); a != b {
				got = "MISMATCH\n--- before\n" + a + "--- after\n" + b
			} else {
				got = "equal"
			}
			f = g
		case "capacity":
			n, err := strconv.Atoi(words[1])
			require.NoError(t, err)
			f, index = New(Options{IdempotencyCapacity: n}), 0
			got = "ok"
		default:
			t.Fatalf("%s:%d: unknown directive %q", path, blk.line, words[0])
		}
		if *update {
			blocks[bi].expected = got
		} else {
			require.Equal(t, blk.expected, got, "%s:%d: %s", path, blk.line, blk.cmd)
		}
		// Every step of every script also survives a snapshot round trip.
		require.Equal(t, f.Dump(), snapshotRestore(t, f).Dump(), "%s:%d: snapshot round trip", path, blk.line)
	}
	if *update {
		for i, blk := range blocks {
			if i > 0 {
				out.WriteString("\n")
			}
			for _, c := range blk.comments {
				out.WriteString(c + "\n")
			}
			fmt.Fprintf(&out, "%s\n----\n%s\n", blk.cmd, blk.expected)
		}
		require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
	}
}

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, p := range files {
		t.Run(filepath.Base(p), func(t *testing.T) { runScript(t, p) })
	}
}
