package apiclient

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/rap-fabric/core/pki"
)

// ErrNoPin is returned by ServerCA when the client has no CA pin: without
// one, the certificate the server presents proves nothing.
var ErrNoPin = errors.New("apiclient: a CA pin is needed to export the CA")

// ServerCA returns the CA certificate that signs the authorities' API
// certificates (the platform CA), as presented by the first authority that
// answers and verified against the client's pin.
func (c *Client) ServerCA(ctx context.Context) (*x509.Certificate, error) {
	if c.opts.CAPin == "" {
		return nil, ErrNoPin
	}
	var lastErr error = ErrUnreachable
	for _, addr := range c.order() {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+strings.TrimPrefix(addr, "https://")+"/v1/authority/status", nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = fmt.Errorf("%w: %s: %w", ErrUnreachable, addr, err)
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) < 2 {
			return nil, errors.New("apiclient: the server presented no CA certificate")
		}
		for _, ca := range resp.TLS.PeerCertificates[1:] {
			if pki.CheckPin(ca, c.opts.CAPin) == nil {
				return ca, nil
			}
		}
		return nil, pki.ErrPinMismatch
	}
	return nil, lastErr
}
