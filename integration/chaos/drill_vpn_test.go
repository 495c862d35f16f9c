package chaos

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"testing"
)

const (
	v1LeaseTTL = 3                // seconds: the VPN connection's lease term
	v1Takeover = 20 * time.Second // cut → the other agent holds the lease
	v1Cut      = 5 * time.Second  // how long the cut lasts after the takeover
	v1Learn    = 20 * time.Second // heal → the old holder knows it lost the lease
)

// vpnLeaseRow is a row of vpn_connection_leases, read straight from PostgreSQL.
type vpnLeaseRow struct {
	Generation int64
	Owner      string
	Status     string
	Acquired   time.Time
	Expires    time.Time
	Ended      *time.Time
}

// end is when the lease's holder may have stopped running it at the latest:
// its expiry, or the release when it released earlier. (A fenced or revoked
// holder may run until the expiry; the authority grants nothing before.)
func (l vpnLeaseRow) end() time.Time {
	if l.Status == "released" && l.Ended != nil && l.Ended.Before(l.Expires) {
		return *l.Ended
	}
	return l.Expires
}

// checkLeaseHistory verifies that no two holders of a connection's lease
// overlap at any instant and that at most one lease is active.
func checkLeaseHistory(rows []vpnLeaseRow) Check {
	c := Check{Name: "no two lease holders at any instant (lease history)", OK: len(rows) > 0}
	active := 0
	var parts []string
	for i, r := range rows {
		parts = append(parts, fmt.Sprintf("g%d %s %s [%s, %s]", r.Generation, short(r.Owner), r.Status, r.Acquired.Format("15:04:05.000"), r.end().Format("15:04:05.000")))
		if r.Status == "active" {
			active++
		}
		if i > 0 && r.Acquired.Before(rows[i-1].end()) {
			c.OK = false
			parts = append(parts, fmt.Sprintf("OVERLAP: g%d starts %s before g%d ends", r.Generation, rows[i-1].end().Sub(r.Acquired), rows[i-1].Generation))
		}
	}
	if active > 1 {
		c.OK = false
	}
	c.Detail = strings.Join(parts, "; ")
	return c
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// V1: two agents are eligible for one VPN connection; the lease holder is cut
// off from every authority. Its lease expires and the other agent holds it;
// the cut-off agent stops at the end of its own term (before the takeover)
// and, after the heal, its renewal is refused and it stands by. The lease
// history in PostgreSQL never shows two holders at once.
func TestDrillVPNLeaseOwnerCutOff(t *testing.T) {
	requireChaos(t)
	e := NewEnv(t, Options{Name: "V1"})
	w := e.StartWorkload(opsPerSecond)
	token, pin, err := e.CreateClusterAndToken("v1-vpn", 2)
	if err != nil {
		t.Fatal(err)
	}
	var agents []*Agent
	for i, name := range []string{"agent1", "agent2"} {
		ag := e.AddAgent(name, octetAgent+byte(i))
		ag.Caps = []string{"can_run_vpn_exit"}
		ag.RunArgs = []string{"--no-mesh", "--vpn-every", "200ms", "--vpn-poll-every", "500ms"}
		if _, err := ag.Enroll(token, pin, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := ag.Run(); err != nil {
			t.Fatal(err)
		}
		agents = append(agents, ag)
	}
	byNode := map[string]*Agent{}
	var nodes []string
	for _, ag := range agents {
		m, _, err := ag.WaitAgent(20*time.Second, "heartbeating", func(m AgentMembership) bool { return m.Running && m.HeartbeatsAcked >= 1 })
		if err != nil {
			t.Fatal(err)
		}
		byNode[m.NodeID] = ag
		nodes = append(nodes, m.NodeID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	setup := func(method, path string, body any, out any) {
		t.Helper()
		if _, err := e.API.Do(ctx, method, path, body, out, map[string]string{"Idempotency-Key": "v1-" + method + path}); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	for _, n := range nodes {
		setup(http.MethodPost, "/v1/clusters/v1-vpn/nodes/"+n+"/roles", map[string]any{"role": "vpn-exit"}, nil)
	}
	var conn struct {
		ID string `json:"id"`
	}
	setup(http.MethodPost, "/v1/clusters/v1-vpn/vpn-connections", map[string]any{"name": "office", "address_family": "ipv4", "desired_state": "enabled",
		"remote_prefixes": []string{"192.168.50.0/24"}, "lease_ttl_seconds": v1LeaseTTL}, &conn)
	setup(http.MethodPut, "/v1/clusters/v1-vpn/vpn-connections/office/allowed-nodes", map[string]any{"node_ids": nodes}, nil)

	history := func() []vpnLeaseRow {
		rows, err := e.DB.Query(context.Background(), `SELECT generation, owner_node_id::text, status, acquired_at, expires_at, ended_at
			FROM vpn_connection_leases WHERE connection_id = $1 ORDER BY generation`, conn.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []vpnLeaseRow
		for rows.Next() {
			var r vpnLeaseRow
			if err := rows.Scan(&r.Generation, &r.Owner, &r.Status, &r.Acquired, &r.Expires, &r.Ended); err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	active := func() (vpnLeaseRow, bool) {
		for _, r := range history() {
			if r.Status == "active" {
				return r, true
			}
		}
		return vpnLeaseRow{}, false
	}
	var first vpnLeaseRow
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if r, ok := active(); ok {
			first = r
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if first.Generation == 0 {
		t.Fatal("no agent acquired the VPN lease within 30s")
	}
	holder := byNode[first.Owner]
	var other *Agent
	for n, ag := range byNode {
		if n != first.Owner {
			other = ag
		}
	}
	if _, _, err := holder.WaitAgent(10*time.Second, "holding", func(m AgentMembership) bool {
		return len(m.VPN) == 1 && m.VPN[0].State == "holding" && m.VPN[0].Reported == "assigned"
	}); err != nil {
		t.Fatal(err)
	}
	e.Event("%s holds the lease (generation %d); %s stands by", holder.Name, first.Generation, other.Name)

	// Cut the holder off from every authority.
	if err := e.Net.Isolate(holder.Host, e.AuthHosts()...); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	e.Event("cut %s off from every authority", holder.Name)
	var second vpnLeaseRow
	var takeover time.Duration
	deadline = time.Now().Add(v1Takeover)
	for time.Now().Before(deadline) {
		if r, ok := active(); ok && r.Owner != first.Owner {
			second, takeover = r, time.Since(cutAt)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if second.Generation != 0 {
		e.Event("%s holds the lease (generation %d) %.1fs after the cut", other.Name, second.Generation, takeover.Seconds())
	}
	suspended, _, suspErr := holder.WaitAgent(10*time.Second, "suspended", func(m AgentMembership) bool {
		return len(m.VPN) == 1 && m.VPN[0].State == "suspended"
	})
	if suspErr == nil {
		e.Event("%s suspended its lease: %s", holder.Name, suspended.VPN[0].LastEvent)
	}
	time.Sleep(v1Cut) // the cut lasts a while longer (the checks below do not rely on this wait)
	if err := e.Net.Heal(); err != nil {
		t.Fatal(err)
	}
	e.Event("heal")
	learned, toLearn, learnErr := holder.WaitAgent(v1Learn, "told it lost the lease", func(m AgentMembership) bool {
		return len(m.VPN) == 1 && m.VPN[0].Lost >= 1 && m.VPN[0].State == "standby"
	})
	if learnErr == nil {
		e.Event("%s learned it lost the lease %.1fs after the heal: %s", holder.Name, toLearn.Seconds(), learned.VPN[0].LastEvent)
	}
	final := history()
	cur, curOK := active()

	r := finish(t, e, w, "the VPN lease owner cut off from every authority", func(DBState) []Check {
		take := Check{Name: fmt.Sprintf("another eligible agent holds the lease within %v of the cut", v1Takeover), OK: second.Generation == first.Generation+1}
		take.Detail = fmt.Sprintf("%s holds generation %d after %.1fs", other.Name, second.Generation, takeover.Seconds())
		if second.Generation == 0 {
			take.Detail = "no takeover"
		}
		stop := Check{Name: "the cut-off holder stops at the end of its own term, before the takeover", OK: suspErr == nil}
		if suspErr == nil {
			at, err := eventTime(suspended.VPN[0].LastEvent)
			stop.OK = err == nil && second.Generation != 0 && !at.After(second.Acquired)
			stop.Detail = fmt.Sprintf("%s; takeover at %s", suspended.VPN[0].LastEvent, second.Acquired.Format(time.RFC3339Nano))
		} else {
			stop.Detail = suspErr.Error()
		}
		refused := Check{Name: "after the heal the old holder's renewal is refused and it stands by", OK: learnErr == nil && curOK && cur.Owner == second.Owner}
		if learnErr == nil {
			refused.Detail = fmt.Sprintf("%s: %s; the lease stays with %s (generation %d)", holder.Name, learned.VPN[0].LastEvent, other.Name, cur.Generation)
		} else {
			refused.Detail = learnErr.Error()
		}
		return []Check{take, stop, refused, checkLeaseHistory(final)}
	})
	r.Notes = append(r.Notes, fmt.Sprintf("lease term %ds; the agent renews after a third of it and suspends the lease when its own term ends without a renewal", v1LeaseTTL))
	e.Emit(r)
}

// eventTime parses the time of an agent lease event ("kind generation N at T").
func eventTime(ev string) (time.Time, error) {
	i := strings.LastIndex(ev, " at ")
	if i < 0 {
		return time.Time{}, fmt.Errorf("no time in %q", ev)
	}
	return time.Parse(time.RFC3339Nano, ev[i+4:])
}
