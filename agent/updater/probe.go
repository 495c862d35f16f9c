package updater

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// AgentStatus is the part of the agent's status report (GET /v1/status on
// its unix socket, agent/runtime.StatusReport) the launcher reads. The
// launcher decodes it itself so that it links none of the agent's runtime.
type AgentStatus struct {
	Source       string `json:"source"`
	AgentVersion string `json:"agent_version"`
	Memberships  []struct {
		ClusterID        string    `json:"cluster_id"`
		LastHeartbeatAck time.Time `json:"last_heartbeat_ack"`
		HeartbeatsAcked  uint64    `json:"heartbeats_acked"`
	} `json:"memberships"`
}

// ProbeSocket returns a Probe that reads the agent's status socket.
func ProbeSocket(socket string) func(ctx context.Context) (AgentStatus, error) {
	return func(ctx context.Context) (AgentStatus, error) {
		hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", socket)
			}}}
		defer hc.CloseIdleConnections()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent/v1/status", nil)
		if err != nil {
			return AgentStatus{}, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return AgentStatus{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return AgentStatus{}, fmt.Errorf("updater: status endpoint answered %s", resp.Status)
		}
		var s AgentStatus
		err = json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&s)
		return s, err
	}
}
