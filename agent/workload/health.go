package workload

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rap-fabric/core/workloadspec"
)

// Execer runs a command as (or inside) a running workload; exec health
// checks use it.
type Execer interface {
	Exec(ctx context.Context, argv []string) error
}

// healthClient never follows redirects to other hosts' and keeps no
// connections between checks.
var healthClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// Check runs one health check within its timeout: nil is healthy.
func Check(ctx context.Context, h *workloadspec.Health, ex Execer) error {
	ctx, cancel := context.WithTimeout(ctx, h.Timeout.D(2*time.Second))
	defer cancel()
	switch h.Kind {
	case workloadspec.CheckHTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL, nil)
		if err != nil {
			return err
		}
		resp, err := healthClient.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("health check answered %d", resp.StatusCode)
		}
		return nil
	case workloadspec.CheckTCP:
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", h.Address)
		if err != nil {
			return err
		}
		return c.Close()
	case workloadspec.CheckExec:
		if ex == nil {
			return fmt.Errorf("exec check: no running workload")
		}
		return ex.Exec(ctx, h.Command)
	}
	return fmt.Errorf("unknown health check kind %q", h.Kind)
}
