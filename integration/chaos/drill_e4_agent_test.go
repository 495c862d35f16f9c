package chaos

import (
	"fmt"
	"testing"
	"time"
)

const (
	e4PerAuthority = 150              // stalled handshakes held open on each authority's listener
	e4Bound        = 10 * time.Second // "a legitimate enrollment still completes quickly"
	a1Degraded     = 15 * time.Second // cut → degraded
	a1Recovered    = 20 * time.Second // heal → normal
	a1Cut          = 8 * time.Second  // how long the agent stays cut off after turning degraded
)

// E4: many stalled TLS handshakes on every authority's enrollment (API)
// listener; a real `rap-node-agent enroll` must still complete within e4Bound
// (a baseline enrollment without the stall is measured in the same run).
func TestDrillE4StalledHandshakes(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "E4"})
	w := e.StartWorkload(opsPerSecond)
	waitAcks(t, e, w.started, 20, 30*time.Second)
	token, pin, err := e.CreateClusterAndToken("e4-agents", 2)
	if err != nil {
		t.Fatal(err)
	}
	base := e.AddAgent("agent1", octetAgent)
	baseline, err := base.Enroll(token, pin, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e.Event("baseline enrollment of agent1 took %.2fs", baseline.Seconds())
	attacker := e.mustHost("attacker", octetOther)
	var apis []string
	for _, a := range e.Auths {
		apis = append(apis, a.APIAddr)
	}
	st := StallHandshakes(attacker, apis, e4PerAuthority)
	defer st.Stop()
	deadline := time.Now().Add(20 * time.Second)
	for st.Open() < int64(len(apis)*e4PerAuthority) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	e.Event("%d stalled TLS handshakes open on %d listeners", st.Open(), len(apis))
	victim := e.AddAgent("agent2", octetAgent+1)
	took, enrollErr := victim.Enroll(token, pin, 60*time.Second)
	open := st.Open()
	e.Event("enrollment of agent2 under the stall took %.2fs (%d stalled handshakes open at the end)", took.Seconds(), open)
	st.Stop()
	e.Event("stall stopped after %d stalled connections in all", st.Opened())
	if _, err := e.WaitStable(30*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	r := finish(t, e, w, fmt.Sprintf("%d stalled TLS handshakes per enrollment listener", e4PerAuthority), func(DBState) []Check {
		c := Check{Name: fmt.Sprintf("legitimate enrollment completes within %v under the stall", e4Bound), OK: enrollErr == nil && took <= e4Bound,
			Detail: fmt.Sprintf("%.2fs (baseline %.2fs) with %d stalled handshakes open", took.Seconds(), baseline.Seconds(), open)}
		if enrollErr != nil {
			c.Detail = enrollErr.Error()
		}
		return []Check{c, {Name: "the stall was in place", OK: open >= int64(len(apis)*e4PerAuthority)/2, Detail: fmt.Sprintf("%d open", open)}}
	})
	e.Emit(r)
}

// Agent drill: an enrolled, running agent is cut off from every authority;
// it turns degraded, keeps running on its last state (identity, certificate
// and applied snapshot version unchanged), and returns to normal after the
// heal.
func TestDrillAgentCutOff(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "A1"})
	w := e.StartWorkload(opsPerSecond)
	token, pin, err := e.CreateClusterAndToken("a1-agents", 1)
	if err != nil {
		t.Fatal(err)
	}
	ag := e.AddAgent("agent1", octetAgent)
	if _, err := ag.Enroll(token, pin, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := ag.Run(); err != nil {
		t.Fatal(err)
	}
	before, _, err := ag.WaitAgent(20*time.Second, "heartbeating", func(m AgentMembership) bool {
		return m.Running && m.HeartbeatsAcked >= 2 && m.Mode == "normal"
	})
	if err != nil {
		t.Fatal(err)
	}
	e.Event("agent1 normal: %d heartbeats acknowledged, applied version %d", before.HeartbeatsAcked, before.AppliedVersion)
	if err := e.Net.Isolate(ag.Host, e.AuthHosts()...); err != nil {
		t.Fatal(err)
	}
	e.Event("cut agent1 off from every authority")
	during, toDegraded, degErr := ag.WaitAgent(a1Degraded, "degraded", func(m AgentMembership) bool { return m.Mode == "degraded" })
	if degErr == nil {
		e.Event("agent1 degraded after %.1fs: %s", toDegraded.Seconds(), during.ModeReason)
		time.Sleep(a1Cut) // stays cut off a while longer
	}
	still, stillErr := ag.Status()
	if err := e.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	e.Event("heal")
	after, toNormal, recErr := ag.WaitAgent(a1Recovered, "normal again", func(m AgentMembership) bool {
		return m.Mode == "normal" && m.HeartbeatsAcked > still.HeartbeatsAcked
	})
	if recErr == nil {
		e.Event("agent1 normal again after %.1fs: %d heartbeats acknowledged", toNormal.Seconds(), after.HeartbeatsAcked)
	}
	r := finish(t, e, w, "an agent cut off from every authority", func(DBState) []Check {
		deg := Check{Name: fmt.Sprintf("agent degraded within %v", a1Degraded), OK: degErr == nil}
		if degErr == nil {
			deg.Detail = fmt.Sprintf("after %.1fs: %s", toDegraded.Seconds(), during.ModeReason)
		} else {
			deg.Detail = degErr.Error()
		}
		kept := Check{Name: "agent keeps running on its last state while cut off",
			OK: stillErr == nil && ag.Proc.Running() && still.Running && still.Mode == "degraded" && still.NodeID == before.NodeID &&
				still.CertificateSerial == before.CertificateSerial && still.AppliedVersion == before.AppliedVersion,
			Detail: fmt.Sprintf("mode %s, node %s, certificate %s, applied version %d (before: %d)", still.Mode, still.NodeID, still.CertificateSerial, still.AppliedVersion, before.AppliedVersion)}
		if stillErr != nil {
			kept.Detail = stillErr.Error()
		}
		rec := Check{Name: fmt.Sprintf("agent recovers within %v of the heal", a1Recovered), OK: recErr == nil}
		if recErr == nil {
			rec.Detail = fmt.Sprintf("after %.1fs; heartbeats acknowledged %d → %d", toNormal.Seconds(), still.HeartbeatsAcked, after.HeartbeatsAcked)
		} else {
			rec.Detail = recErr.Error()
		}
		return []Check{deg, kept, rec}
	})
	r.Notes = append(r.Notes, "the applied version is the signed snapshot the agent verified and persisted in bbolt; it keeps running on it, with its identity and certificate, while cut off")
	e.Emit(r)
}
