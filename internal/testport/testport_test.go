package testport

import "testing"

// TestStableNeverRepeats: ports handed out in one process are all distinct
// (drawn at random from ~22,000 ports, 2,000 draws without this rule repeat
// one about 90 times), and all below the ephemeral range.
func TestStableNeverRepeats(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		a := Stable(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
	}
}
