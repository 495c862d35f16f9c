package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
)

// newLogger builds the process logger: --log-format text or json (one JSON
// object per line), --log-level trace … error.
func newLogger(name, level, format string) (hclog.Logger, error) {
	json := false
	switch format {
	case "text", "":
	case "json":
		json = true
	default:
		return nil, fmt.Errorf("--log-format: %q is not text or json", format)
	}
	lv := hclog.LevelFromString(level)
	if lv == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level: %q is not trace, debug, info, warn or error", level)
	}
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: lv, JSONFormat: json, Output: os.Stderr}), nil
}
