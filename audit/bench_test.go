package audit

import (
	"crypto/sha256"
	"testing"
	"time"
)

// BenchmarkVerifyChain measures verification per event of a 1000-event chain.
func BenchmarkVerifyChain(b *testing.B) {
	prev := Genesis("c1")
	rows := make([]Event, 1000)
	for i := range rows {
		e := sample(i)
		e.At = time.Unix(int64(i), 0)
		var err error
		if rows[i], err = Chain(prev, e); err != nil {
			b.Fatal(err)
		}
		prev = rows[i].Head()
	}
	for b.Loop() {
		res, err := Verify(Slice(rows), VerifyOptions{Start: Genesis("c1")})
		if err != nil || !res.OK() {
			b.Fatal(err, res.Break)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(rows)), "ns/event")
}

// BenchmarkBaselineSHA256 is the baseline: one SHA-256 over a typical
// canonical event size (~300 bytes), the floor of per-event verification cost.
func BenchmarkBaselineSHA256(b *testing.B) {
	buf := make([]byte, 300)
	for b.Loop() {
		_ = sha256.Sum256(buf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/event")
}
