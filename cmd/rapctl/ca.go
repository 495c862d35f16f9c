package main

// rapctl ca export: the platform CA certificate (PEM) that signs every
// authority's API certificate, fetched over the pinned connection, for
// browsers and other clients. Its pin is what --ca-pin / config hold.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rap-fabric/core/apiclient"
)

func caExport(servers, pin string, stdout, stderr io.Writer) error {
	if servers == "" {
		return usagef("no authority address: use --server, RAPCTL_SERVERS or `rapctl config set`")
	}
	c, err := apiclient.New(apiclient.Options{Servers: strings.Split(servers, ","), CAPin: pin, Timeout: 15 * time.Second})
	if err != nil {
		return err
	}
	defer c.Close()
	ca, err := c.ServerCA(context.Background())
	if err != nil {
		return err
	}
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})
	// ServerCA returned the certificate that matches pin.
	if output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"ca_pin": pin, "subject": ca.Subject.String(), "not_before": ca.NotBefore.UTC(),
			"not_after": ca.NotAfter.UTC(), "pem": string(block)})
	}
	fmt.Fprintf(stderr, "platform CA %s (%s), valid until %s\n", pin, ca.Subject, ca.NotAfter.UTC().Format(time.RFC3339))
	_, err = stdout.Write(block)
	return err
}
