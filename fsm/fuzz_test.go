package fsm

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// FuzzDecodeCommand: Decode never panics; whatever it accepts re-encodes to a
// command that decodes to the same value; Apply of anything never panics.
// Seeds live in testdata/fuzz/FuzzDecodeCommand.
func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		ClaimEpoch{LeaderID: "a", Term: 2, At: t0},
		ca("c1", "k1", t0),
		rot("c1", "k2", t0),
		UpsertMember{ID: "m", RaftAddr: "127.0.0.1:1", Suffrage: SuffrageVoter},
		RemoveMember{ID: "m"},
		ReanchorAudit{Seq: 3, Hash: make([]byte, 32), MaxID: 4, SupersededSeq: 9, SupersededHash: bytes.Repeat([]byte{1}, 32),
			Reason: "restored", Actor: "owner", At: t0},
	} {
		data, err := Encode("rid", c)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Decode(data)
		if err == nil {
			again, err := Encode(d.RequestID, d.Command)
			require.NoError(t, err)
			d2, err := Decode(again)
			require.NoError(t, err)
			require.Equal(t, d, d2)
		}
		f := New(Options{IdempotencyCapacity: 4})
		for i := range 2 {
			r, ok := f.Apply(&raft.Log{Index: uint64(i + 1), Data: data}).(Result)
			require.True(t, ok)
			if err != nil {
				require.ErrorIs(t, r.Err, err)
			}
		}
	})
}
