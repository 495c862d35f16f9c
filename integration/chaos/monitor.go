package chaos

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// Observation is one status answer of one authority.
type Observation struct {
	At   time.Time
	Node string
	Status
}

// Monitor polls every authority's GET /v1/authority/status from the client
// host and keeps every answer: the leaders-per-term check and the
// convergence check read them.
type Monitor struct {
	api map[string]*API

	mu   sync.Mutex
	obs  []Observation
	stop chan struct{}
	wg   sync.WaitGroup
}

// MonitorInterval is the polling period per authority.
const MonitorInterval = 200 * time.Millisecond

// NewMonitor starts polling e's authorities.
func NewMonitor(e *Env) *Monitor {
	m := &Monitor{api: map[string]*API{}, stop: make(chan struct{})}
	for _, a := range e.Auths {
		m.api[a.ID] = NewAPI(e.Client, []string{a.APIAddr}, "", e.CAPin, 800*time.Millisecond)
	}
	for _, a := range e.Auths {
		m.wg.Add(1)
		go m.poll(a.ID)
	}
	return m
}

func (m *Monitor) poll(id string) {
	defer m.wg.Done()
	t := time.NewTicker(MonitorInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 800*time.Millisecond)
		var st Status
		_, err := m.api[id].Do(ctx, http.MethodGet, "/v1/authority/status", nil, &st, nil)
		cancel()
		if err == nil {
			m.mu.Lock()
			m.obs = append(m.obs, Observation{At: time.Now(), Node: id, Status: st})
			m.mu.Unlock()
		}
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
	}
}

// Stop ends polling.
func (m *Monitor) Stop() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	m.wg.Wait()
	for _, a := range m.api {
		a.Close()
	}
}

// Observations returns a copy of everything seen so far.
func (m *Monitor) Observations() []Observation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Observation(nil), m.obs...)
}

// LeaderEpoch is the epoch of the most recent leader observation (0 if none).
func (m *Monitor) LeaderEpoch() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.obs) - 1; i >= 0; i-- {
		if m.obs[i].State == "Leader" {
			return m.obs[i].Epoch
		}
	}
	return 0
}

// LeadersPerTerm maps each Raft term to the nodes that reported themselves
// leader in it.
func (m *Monitor) LeadersPerTerm() map[uint64]map[string]bool {
	out := map[uint64]map[string]bool{}
	for _, o := range m.Observations() {
		if o.State != "Leader" {
			continue
		}
		if out[o.Term] == nil {
			out[o.Term] = map[string]bool{}
		}
		out[o.Term][o.Node] = true
	}
	return out
}
