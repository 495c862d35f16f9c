package daemon_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/internal/authtest"
)

const noKEKWarning = "no key-encryption key configured"

// TestWarnsWithoutKEK: an authority started without a key-encryption key
// says so at start (its CA keys are then stored unsealed); one with a KEK
// does not.
func TestWarnsWithoutKEK(t *testing.T) {
	plain := authtest.New(t, 1)
	plain.Leader(10 * time.Second)
	if n := strings.Count(plain.Logs.String(), noKEKWarning); n != 1 {
		t.Fatalf("want the warning once, got %d times:\n%s", n, plain.Logs.String())
	}
	if !strings.Contains(plain.Logs.String(), "[WARN]") {
		t.Fatal("not logged as a warning")
	}

	sealed := authtest.NewWithConfig(t, 1, func(_ int, c *daemon.Config) { c.KEK = []byte(strings.Repeat("k", 32)) })
	sealed.Leader(10 * time.Second)
	if strings.Contains(sealed.Logs.String(), noKEKWarning) {
		t.Fatalf("warned although a KEK is set:\n%s", sealed.Logs.String())
	}
}
