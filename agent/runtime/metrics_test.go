package runtime

import (
	"errors"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/loopback"
)

// TestObserversRefuseNonLoopback: the agent's metrics and pprof listeners
// never listen off the loopback interface.
func TestObserversRefuseNonLoopback(t *testing.T) {
	for _, o := range []RunOptions{{MetricsListen: "0.0.0.0:0"}, {DebugListen: ":0"}, {MetricsListen: "127.0.0.1:0", DebugListen: "192.0.2.1:0"}} {
		a := &Agent{o: o, log: hclog.NewNullLogger()}
		obs, err := a.serveObservers()
		if !errors.Is(err, loopback.ErrNotLoopback) {
			if obs != nil {
				obs.close()
			}
			t.Fatalf("%+v: want ErrNotLoopback, got %v", o, err)
		}
	}
}
