package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rap-fabric/core/apiclient"
)

// auditCommands are the audit anchor commands (docs/audit.md).
var auditCommands = []cmd{
	{path: "audit checkpoint", help: "verify the audit chain since the last checkpoint and commit a new checkpoint through Raft now",
		flags: noFlags(func() (string, string, any, error) { return http.MethodPost, "/v1/audit/checkpoint", nil, nil }),
		table: []string{"seq", "hash", "max_id", "v2_from", "actor", "at", "index"}, single: true},
	{path: "audit checkpoint show", help: "the latest audit checkpoint committed through Raft",
		flags: noFlags(get("/v1/audit/checkpoint")),
		table: []string{"seq", "hash", "max_id", "v2_from", "actor", "at", "index"}, single: true},
	{path: "audit reanchor", help: "after restoring PostgreSQL from a backup older than the latest audit checkpoint: commit through Raft a checkpoint at the verified chain head that supersedes it (--reason, required; platform owner; step-up; fenced; audited)",
		flags: func(fs *flag.FlagSet) builder {
			reason := fs.String("reason", "", "which backup was restored and why (kept in Raft and the audit log; required)")
			return func() (string, string, any, error) {
				if len(positional) != 0 {
					return "", "", nil, errArgs("none")
				}
				if strings.TrimSpace(*reason) == "" {
					return "", "", nil, errArgs("--reason REASON")
				}
				return http.MethodPost, "/v1/audit/reanchor", map[string]string{"reason": *reason}, nil
			}
		},
		table: []string{"seq", "hash", "max_id", "v2_from", "actor", "at", "index"}, single: true},
}

func init() { commands = append(commands, auditCommands...) }

// exportPage is a page of GET /v1/audit/export; events stay raw so every
// field the server sends is written unchanged.
type exportPage struct {
	Events       []json.RawMessage `json:"events"`
	NextAfterSeq int64             `json:"next_after_seq"`
}

// auditExportCmd implements `rapctl audit export [--after-seq N] [--follow]
// [--file F]`: chained audit events in chain order as JSON lines, one event
// per line, on stdout or appended to a file (resuming after the file's last
// event). With --follow it keeps polling for new events until interrupted.
func auditExportCmd(ctx context.Context, c *apiclient.Client, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	after := fs.Int64("after-seq", -1, "export events with seq above this (default: 0, or the last seq in --file)")
	follow := fs.Bool("follow", false, "keep running and export new events as they are chained")
	interval := fs.Duration("interval", time.Second, "with --follow, how often to poll for new events")
	file := fs.String("file", "", "append to this file instead of writing to stdout")
	limit := fs.Int("page", 500, "events per request (1-1000)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *interval <= 0 || *limit < 1 || *limit > 1000 {
		return errors.New("--interval must be positive and --page 1 to 1000")
	}
	out := stdout
	cursor := int64(0)
	if *file != "" {
		last, err := lastExportedSeq(*file)
		if err != nil {
			return err
		}
		cursor = last
		f, err := os.OpenFile(*file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	if *after >= 0 {
		cursor = *after
	}
	w := bufio.NewWriter(out)
	for {
		var page exportPage
		q := url.Values{"after_seq": {strconv.FormatInt(cursor, 10)}, "limit": {strconv.Itoa(*limit)}}
		if err := c.Do(ctx, http.MethodGet, "/v1/audit/export?"+q.Encode(), nil, &page, nil); err != nil {
			if ctx.Err() != nil {
				return w.Flush()
			}
			return err
		}
		for _, e := range page.Events {
			var line bytes.Buffer
			if err := json.Compact(&line, e); err != nil {
				return fmt.Errorf("audit export: server sent invalid JSON: %w", err)
			}
			line.WriteByte('\n')
			if _, err := w.Write(line.Bytes()); err != nil {
				return err
			}
		}
		if page.NextAfterSeq > cursor {
			cursor = page.NextAfterSeq
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if len(page.Events) == *limit {
			continue
		}
		if !*follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// lastExportedSeq returns the seq of the last complete line of an export
// file (0 when the file is missing or empty).
func lastExportedSeq(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 {
		return 0, nil
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[i+1:]
	}
	var ev struct {
		Seq int64 `json:"seq"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.Seq <= 0 {
		return 0, fmt.Errorf("audit export: the last line of %s is not an exported event; refusing to append", path)
	}
	return ev.Seq, nil
}

// signalContext is ctx, also cancelled on SIGINT or SIGTERM (to end --follow).
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
