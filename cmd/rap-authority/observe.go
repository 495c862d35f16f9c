package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// observeFlags are the logging, metrics and pprof flags of run.
type observeFlags struct {
	logFormat, metricsListen, metricsTokenFile, debugListen *string
}

// DefaultMetricsListen is where the authority serves Prometheus metrics
// unless told otherwise: loopback only (a Prometheus agent on the host, or
// a remote scrape of /metrics on the API listener with a scrape token).
const DefaultMetricsListen = "127.0.0.1:9464"

func newObserveFlags(fs *flag.FlagSet) observeFlags {
	return observeFlags{
		logFormat:        fs.String("log-format", "text", "log format: text or json (one JSON object per line)"),
		metricsListen:    fs.String("metrics-listen", DefaultMetricsListen, "loopback address of the Prometheus metrics listener (plain HTTP, no credentials; \"off\" for none); non-loopback addresses are refused"),
		metricsTokenFile: fs.String("metrics-token-file", "", "file holding a scrape token that opens /metrics on the API listener (Authorization: Bearer); without it /metrics is refused there"),
		debugListen:      fs.String("debug-listen", "", "loopback address of a pprof listener (/debug/pprof/); empty for none; non-loopback addresses are refused"),
	}
}

// logger builds the process logger in the chosen format.
func (o observeFlags) logger(name, level string) (hclog.Logger, error) {
	json := false
	switch *o.logFormat {
	case "text", "":
	case "json":
		json = true
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", *o.logFormat)
	}
	lv := hclog.LevelFromString(level)
	if lv == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level: %q is not trace, debug, info, warn or error", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: lv, JSONFormat: json, Output: os.Stderr}), nil
}

// metricsToken reads the scrape token file ("" without one).
func (o observeFlags) metricsToken() (string, error) {
	if *o.metricsListen == "off" {
		*o.metricsListen = ""
	}
	if *o.metricsTokenFile == "" {
		return "", nil
	}
	data, err := os.ReadFile(*o.metricsTokenFile)
	if err != nil {
		return "", fmt.Errorf("--metrics-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if len(tok) < 16 {
		return "", errors.New("--metrics-token-file: the scrape token must be at least 16 characters")
	}
	return tok, nil
}
