package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var ctx = context.Background()

type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(1500 * time.Nanosecond) // sub-microsecond parts are dropped
	return c.now
}

func sample(i int) Event {
	return Event{
		ClusterID:  "c1",
		Actor:      fmt.Sprintf("user-%d", i%3),
		ActorKind:  ActorUser,
		Device:     "dev-1",
		SourceAddr: "198.51.100.7",
		Action:     "node.approve",
		TargetKind: "node",
		TargetID:   fmt.Sprintf("node-%d", i),
		Outcome:    OutcomeOK,
		Risk:       map[string]string{"device": "trusted", "mfa": "required"},
		Details:    json.RawMessage(fmt.Sprintf(`{"z": %d, "a": [1, 2.50, "x"]}`, i)),
	}
}

// buildChain records n events through a Log over a MemStore.
func buildChain(t *testing.T, n int) (*Log, *MemStore, []Event) {
	t.Helper()
	store := NewMemStore()
	log, err := NewLog(LogOptions{Store: store, Clock: &stepClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}})
	require.NoError(t, err)
	var out []Event
	for i := range n {
		e, err := log.Record(ctx, sample(i))
		require.NoError(t, err)
		out = append(out, e)
	}
	return log, store, out
}

func TestChainBasics(t *testing.T) {
	_, store, evs := buildChain(t, 3)
	g := Genesis("c1")
	require.Equal(t, int64(1), evs[0].Seq)
	require.Equal(t, g.Hash, evs[0].PrevHash)
	require.Equal(t, evs[0].Hash, evs[1].PrevHash)
	require.Equal(t, int64(3), evs[2].Seq)
	require.NotEqual(t, Genesis("c2").Hash, g.Hash, "genesis is per chain")
	require.Equal(t, `{"a":[1,2.50,"x"],"z":0}`, string(evs[0].Details), "canonical details")
	require.Zero(t, evs[0].At.Nanosecond()%1000, "microsecond precision")
	require.Equal(t, time.UTC, evs[0].At.Location())

	h, err := store.Head(ctx, "c1")
	require.NoError(t, err)
	require.Equal(t, evs[2].Head(), h)

	res, err := Verify(store.Events(ctx, "c1", 1), VerifyOptions{Start: g})
	require.NoError(t, err)
	require.True(t, res.OK(), "%v", res.Break)
	require.Equal(t, int64(3), res.Checked)
	require.NoError(t, res.Err())

	// The hash is a pure function of content: recomputing matches.
	for _, e := range evs {
		got, err := ComputeHash(e)
		require.NoError(t, err)
		require.Equal(t, e.Hash, got)
	}
}

func TestCanonicalIsStable(t *testing.T) {
	base := sample(1)
	base.At = time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("X", 3600))
	a, err := Chain(Genesis("c1"), base)
	require.NoError(t, err)

	// Same content in another representation: key order, whitespace, zone,
	// nanoseconds below a microsecond, map iteration order, IPv6 spelling.
	alt := base
	alt.At = base.At.UTC().Add(200 * time.Nanosecond)
	alt.Details = json.RawMessage(`{ "a":[1,2.50,"x"] ,"z":1 }`)
	alt.Risk = map[string]string{"mfa": "required", "device": "trusted"}
	b, err := Chain(Genesis("c1"), alt)
	require.NoError(t, err)
	require.Equal(t, a.Hash, b.Hash)

	v6 := sample(1)
	v6.At, v6.SourceAddr = base.At, "2001:0db8:0000::0001"
	c, err := Chain(Genesis("c1"), v6)
	require.NoError(t, err)
	require.Equal(t, "2001:db8::1", c.SourceAddr)

	// Field boundaries are unambiguous: moving a character between adjacent
	// fields changes the hash.
	x, y := base, base
	x.TargetKind, x.TargetID = "node", "-1"
	y.TargetKind, y.TargetID = "node-", "1"
	hx, _ := Chain(Genesis("c1"), x)
	hy, _ := Chain(Genesis("c1"), y)
	require.NotEqual(t, hx.Hash, hy.Hash)
}

func TestNormalizeRefusals(t *testing.T) {
	ok := sample(1)
	ok.At = time.Unix(1, 0)
	for name, mut := range map[string]func(*Event){
		"no action":       func(e *Event) { e.Action = "" },
		"bad outcome":     func(e *Event) { e.Outcome = "maybe" },
		"bad actor kind":  func(e *Event) { e.ActorKind = "ghost" },
		"zero time":       func(e *Event) { e.At = time.Time{} },
		"bad address":     func(e *Event) { e.SourceAddr = "not-an-ip" },
		"NUL in target":   func(e *Event) { e.TargetID = "a\x00b" },
		"invalid UTF-8":   func(e *Event) { e.Actor = "\xff" },
		"bad JSON":        func(e *Event) { e.Details = json.RawMessage(`{"a":`) },
		"two JSON values": func(e *Event) { e.Details = json.RawMessage(`{} {}`) },
		"NUL in risk":     func(e *Event) { e.Risk = map[string]string{"k\x00": "v"} },
	} {
		e := ok
		mut(&e)
		_, err := Chain(Genesis(""), e)
		require.ErrorIs(t, err, ErrInvalidEvent, name)
	}
	_, err := Chain(Genesis(""), ok)
	require.NoError(t, err)
}

func tamperVerify(t *testing.T, evs []Event, expect *Head) *Break {
	t.Helper()
	res, err := Verify(Slice(evs), VerifyOptions{Start: Genesis("c1"), Expect: expect})
	require.NoError(t, err)
	require.NotNil(t, res.Break, "tampering not detected")
	require.ErrorIs(t, res.Err(), ErrChainBroken)
	return res.Break
}

// TestC3 covers TESTING.md C3: rows altered or deleted behind the
// application's back are detected at the right row.
func TestC3(t *testing.T) {
	_, store, _ := buildChain(t, 10)
	rows := func() []Event { // a fresh copy of the stored rows
		var out []Event
		for e, err := range store.Events(ctx, "c1", 1) {
			require.NoError(t, err)
			out = append(out, e)
		}
		return out
	}
	head, _ := store.Head(ctx, "c1")

	t.Run("edit a field", func(t *testing.T) {
		for _, edit := range []func(*Event){
			func(e *Event) { e.Outcome = OutcomeDenied },
			func(e *Event) { e.Actor = "someone-else" },
			func(e *Event) { e.At = e.At.Add(time.Microsecond) },
			func(e *Event) { e.Details = json.RawMessage(`{"a":[1,2.50,"x"],"z":99}`) },
			func(e *Event) { e.Risk["mfa"] = "not-required" },
			func(e *Event) { e.SourceAddr = "203.0.113.1" },
		} {
			r := rows()
			edit(&r[4])
			b := tamperVerify(t, r, nil)
			require.Equal(t, int64(5), b.Seq)
			require.Equal(t, ReasonHashMismatch, b.Reason)
		}
	})
	t.Run("edit and rehash the row", func(t *testing.T) {
		r := rows()
		r[4].Outcome = OutcomeDenied
		r[4].Hash, _ = ComputeHash(r[4])
		b := tamperVerify(t, r, nil)
		require.Equal(t, int64(6), b.Seq, "names the next row")
		require.Equal(t, ReasonPrevMismatch, b.Reason)
	})
	t.Run("delete a row", func(t *testing.T) {
		r := rows()
		r = slices.Delete(r, 4, 5) // seq 5
		b := tamperVerify(t, r, nil)
		require.Equal(t, int64(5), b.Seq, "names the missing seq")
		require.Equal(t, ReasonSeqGap, b.Reason)
	})
	t.Run("delete a row and renumber", func(t *testing.T) {
		r := rows()
		r = slices.Delete(r, 4, 5)
		for i := 4; i < len(r); i++ {
			r[i].Seq--
		}
		b := tamperVerify(t, r, nil)
		require.Equal(t, int64(5), b.Seq, "the row now at seq 5 (formerly 6)")
		require.Equal(t, ReasonPrevMismatch, b.Reason)
	})
	t.Run("delete the first row", func(t *testing.T) {
		b := tamperVerify(t, rows()[1:], nil)
		require.Equal(t, int64(1), b.Seq)
		require.Equal(t, ReasonSeqGap, b.Reason)
	})
	t.Run("reorder rows (iteration order)", func(t *testing.T) {
		r := rows()
		r[3], r[4] = r[4], r[3]
		b := tamperVerify(t, r, nil)
		require.Equal(t, int64(4), b.Seq, "seq 4 is not where it belongs")
		require.Equal(t, ReasonSeqGap, b.Reason)
	})
	t.Run("reorder contents keeping seq numbers", func(t *testing.T) {
		r := rows()
		r[3], r[4] = r[4], r[3]
		r[3].Seq, r[4].Seq = 4, 5
		b := tamperVerify(t, r, nil)
		require.Equal(t, int64(4), b.Seq)
		require.Equal(t, ReasonPrevMismatch, b.Reason)
	})
	t.Run("duplicate a row", func(t *testing.T) {
		r := rows()
		r = slices.Insert(r, 5, r[4])
		b := tamperVerify(t, r, nil)
		require.Equal(t, int64(5), b.Seq)
		require.Equal(t, ReasonSeqOrder, b.Reason)
	})
	t.Run("truncate the newest rows", func(t *testing.T) {
		r := rows()[:7]
		res, err := Verify(Slice(r), VerifyOptions{Start: Genesis("c1")})
		require.NoError(t, err)
		require.True(t, res.OK(), "undetectable without an anchor")
		b := tamperVerify(t, r, &head)
		require.Equal(t, int64(8), b.Seq)
		require.Equal(t, ReasonTruncated, b.Reason)
	})
	t.Run("rewrite the tail consistently", func(t *testing.T) {
		r := rows()
		r[7].Outcome = OutcomeFailed
		prev := r[6].Head()
		for i := 7; i < len(r); i++ {
			var err error
			r[i], err = Chain(prev, r[i])
			require.NoError(t, err)
			prev = r[i].Head()
		}
		res, err := Verify(Slice(r), VerifyOptions{Start: Genesis("c1")})
		require.NoError(t, err)
		require.True(t, res.OK(), "a consistent rewrite needs the anchor")
		b := tamperVerify(t, r, &head)
		require.Equal(t, int64(10), b.Seq)
		require.Equal(t, ReasonHeadMismatch, b.Reason)
	})
	t.Run("move a row from another chain", func(t *testing.T) {
		r := rows()
		other, err := Chain(Genesis("c2"), r[0])
		require.NoError(t, err)
		r[0] = other
		b := tamperVerify(t, r, nil)
		require.Equal(t, int64(1), b.Seq)
		require.Equal(t, ReasonPrevMismatch, b.Reason)
	})
	t.Run("garbage row", func(t *testing.T) {
		r := rows()
		r[2].Outcome = "bogus"
		b := tamperVerify(t, r, nil)
		require.Equal(t, int64(3), b.Seq)
		require.Equal(t, ReasonHashMismatch, b.Reason)
	})
	t.Run("tampering in the store", func(t *testing.T) {
		_, s2, _ := buildChain(t, 5)
		s2.mu.Lock()
		s2.chains["c1"][2].TargetID = "node-evil"
		s2.mu.Unlock()
		log, err := NewLog(LogOptions{Store: s2})
		require.NoError(t, err)
		res, err := log.Verify(ctx, "c1", nil)
		require.NoError(t, err)
		require.NotNil(t, res.Break)
		require.Equal(t, int64(3), res.Break.Seq)
		require.Equal(t, int64(2), res.Checked)
	})
}

// TestRandomTampering builds random chains, applies one random mutation and
// checks that Verify reports the expected row.
func TestRandomTampering(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := range 300 {
		n := 2 + rng.IntN(40)
		prev := Genesis("c1")
		rows := make([]Event, n)
		for i := range rows {
			e := randomEvent(rng)
			var err error
			rows[i], err = Chain(prev, e)
			require.NoError(t, err)
			prev = rows[i].Head()
		}
		head := prev
		k := rng.IntN(n)
		var wantSeq int64
		var expect *Head
		switch op := rng.IntN(4); op {
		case 0: // edit
			rows[k].TargetID += "x"
			wantSeq = int64(k + 1)
		case 1: // delete
			rows = slices.Delete(rows, k, k+1)
			wantSeq = int64(k + 1) // the deleted row's seq
			if k == n-1 {
				expect, wantSeq = &head, int64(n)
			}
		case 2: // swap two distinct rows
			j := (k + 1 + rng.IntN(n-1)) % n
			rows[k], rows[j] = rows[j], rows[k]
			// the row now at position min(k,j) carries seq max(k,j)+1: a gap
			// whose first missing seq is the first displaced one
			wantSeq = int64(min(k, j) + 1)
		case 3: // flip one bit of a hash
			rows[k].Hash[rng.IntN(32)] ^= 1 << rng.IntN(8)
			wantSeq = int64(k + 1)
		}
		res, err := Verify(Slice(rows), VerifyOptions{Start: Genesis("c1"), Expect: expect})
		require.NoError(t, err)
		require.NotNil(t, res.Break, "iteration %d: not detected", iter)
		require.Equal(t, wantSeq, res.Break.Seq, "iteration %d: %v", iter, res.Break)
	}
}

func randomEvent(rng *rand.Rand) Event {
	kinds := []ActorKind{ActorUser, ActorAPIToken, ActorNode, ActorSystem}
	outcomes := []Outcome{OutcomeOK, OutcomeDenied, OutcomeFailed}
	s := func() string {
		b := make([]rune, rng.IntN(12))
		for i := range b {
			b[i] = rune(0x20 + rng.IntN(0x3000))
		}
		return string(b)
	}
	e := Event{
		ClusterID: "c1", Actor: s(), ActorKind: kinds[rng.IntN(4)], Device: s(),
		Action: "a." + s(), TargetKind: s(), TargetID: s(), Outcome: outcomes[rng.IntN(3)],
		At: time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)),
	}
	if rng.IntN(2) == 0 {
		e.SourceAddr = fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), rng.IntN(256))
	}
	if rng.IntN(2) == 0 {
		e.Risk = map[string]string{s(): s(), s(): s()}
	}
	if rng.IntN(2) == 0 {
		d, _ := json.Marshal(map[string]any{s(): rng.IntN(1000), "list": []string{s(), s()}})
		e.Details = d
	}
	return e
}

func TestConcurrentAppendsStayLinear(t *testing.T) {
	store := NewMemStore()
	log, err := NewLog(LogOptions{Store: store})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 26 {
				e := sample(w*100 + i)
				e.ClusterID = []string{"c1", "c2"}[i%2]
				_, err := log.Record(ctx, e)
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range []string{"c1", "c2"} {
		res, err := log.Verify(ctx, c, nil)
		require.NoError(t, err)
		require.True(t, res.OK(), "%v", res.Break)
		require.Equal(t, int64(8*13), res.Checked)
		h, _ := store.Head(ctx, c)
		require.Equal(t, h, res.Head)
	}
}

func TestRecordRejectsInvalidAndAppendChecksLinks(t *testing.T) {
	store := NewMemStore()
	log, err := NewLog(LogOptions{Store: store})
	require.NoError(t, err)
	_, err = log.Record(ctx, Event{Action: "x", ActorKind: ActorUser})
	require.ErrorIs(t, err, ErrInvalidEvent)
	h, _ := store.Head(ctx, "")
	require.Equal(t, Genesis(""), h, "nothing stored")

	_, err = store.Append(ctx, "", func(Head) (Event, error) { return Chain(Head{Seq: 41}, sample(1)) })
	require.Error(t, err, "an event that does not extend the head is refused")
	boom := errors.New("boom")
	_, err = store.Append(ctx, "", func(Head) (Event, error) { return Event{}, boom })
	require.ErrorIs(t, err, boom)
	_, err = NewLog(LogOptions{})
	require.ErrorIs(t, err, ErrInvalidConfig)
}

func TestVerifyIteratorError(t *testing.T) {
	boom := errors.New("db gone")
	_, err := Verify(func(yield func(Event, error) bool) { yield(Event{}, boom) }, VerifyOptions{})
	require.ErrorIs(t, err, boom)
}

func TestHashText(t *testing.T) {
	h := Genesis("x").Hash
	b, err := json.Marshal(h)
	require.NoError(t, err)
	var back Hash
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, h, back)
	require.Error(t, back.UnmarshalText([]byte("abc")))
}

// The shortcut for values already canonical gives what decoding and
// encoding give.
func TestCanonicalJSONShortcut(t *testing.T) {
	for _, s := range []string{`{}`, `[]`, `null`} {
		got, err := CanonicalJSON(json.RawMessage(s))
		require.NoError(t, err)
		var v any
		require.NoError(t, json.Unmarshal([]byte(s), &v))
		var want json.RawMessage
		if v != nil {
			want, err = json.Marshal(v)
			require.NoError(t, err)
		}
		require.Equal(t, string(want), string(got), s)
		require.Equal(t, want == nil, got == nil, s)
	}
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"b":1,"a":[1,2,{"c":null}]}`, `"x"`, `1e3`, `[1.50]`, `{"\u00e9":"<&>"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CanonicalJSON(json.RawMessage(s))
		if err != nil {
			return
		}
		c2, err := CanonicalJSON(c)
		if err != nil {
			t.Fatalf("canonical output %q does not re-parse: %v", c, err)
		}
		if string(c) != string(c2) {
			t.Fatalf("not idempotent: %q -> %q", c, c2)
		}
	})
}

// Format 2 covers every field a store keeps; format 1 (rows chained before
// it) does not cover the fields format 2 added.
func TestFormatCoversEveryField(t *testing.T) {
	epoch := int64(4)
	base := sample(1)
	base.At = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	base.ID, base.OrgID, base.FenceEpoch, base.RiskJSON = 17, "org-1", &epoch, json.RawMessage(`{"device":"trusted"}`)
	h0, err := ComputeHash(base)
	require.NoError(t, err)
	other := int64(5)
	zero := int64(0)
	for name, edit := range map[string]func(*Event){
		"id":                 func(e *Event) { e.ID = 18 },
		"organization":       func(e *Event) { e.OrgID = "org-2" },
		"fence epoch":        func(e *Event) { e.FenceEpoch = &other },
		"fence epoch 0":      func(e *Event) { e.FenceEpoch = &zero },
		"fence epoch null":   func(e *Event) { e.FenceEpoch = nil },
		"risk value type":    func(e *Event) { e.RiskJSON = json.RawMessage(`{"device":1}`) },
		"risk not an object": func(e *Event) { e.RiskJSON = json.RawMessage(`[]`) },
		"seq":                func(e *Event) { e.Seq = 2 },
		"legacy format":      func(e *Event) { e.Format = FormatLegacy },
	} {
		e := base
		edit(&e)
		h, err := ComputeHash(e)
		require.NoError(t, err, name)
		require.NotEqual(t, h0, h, name)
	}
	// Same risk in another spelling hashes the same.
	e := base
	e.RiskJSON = json.RawMessage(`{ "device" : "trusted" }`)
	h, err := ComputeHash(e)
	require.NoError(t, err)
	require.Equal(t, h0, h)

	legacy := base
	legacy.Format = FormatLegacy
	l0, err := ComputeHash(legacy)
	require.NoError(t, err)
	legacy.ID, legacy.OrgID, legacy.FenceEpoch = 99, "org-9", nil
	l1, err := ComputeHash(legacy)
	require.NoError(t, err)
	require.Equal(t, l0, l1, "format 1 predates these fields")
}
