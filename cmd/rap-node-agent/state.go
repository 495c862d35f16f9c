package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rap-fabric/core/agent/state"
)

// stateMigrateResult is what `state migrate` prints.
type stateMigrateResult struct {
	State     string                  `json:"state"`
	Schema    uint64                  `json:"schema"`
	Target    uint64                  `json:"target"`
	Supported uint64                  `json:"supported"`
	Steps     []state.MigrationStep   `json:"steps"`
	Preflight []string                `json:"preflight,omitempty"`
	Applied   bool                    `json:"applied"`
	Backup    string                  `json:"backup,omitempty"`
	History   []state.MigrationRecord `json:"history"`
}

// stateCmd runs `rap-node-agent state migrate`: the node-local state
// migrations for operators. Without --apply it is a dry run: it prints the
// file's schema, the registered steps to the target and runs the preflight
// checks, changing nothing. With --apply it takes a backup (mode 0600,
// next to the file), then runs the steps in one transaction. The agent must
// be stopped (the file is locked while it runs).
func stateCmd(args []string) error {
	if len(args) == 0 || args[0] != "migrate" {
		return errors.New("usage: rap-node-agent state migrate [--state PATH] [--to N] [--preflight CHECK]... [--apply] [-o table|json]")
	}
	fs := flag.NewFlagSet("state migrate", flag.ContinueOnError)
	statePath := fs.String("state", defaultState, "state file")
	to := fs.Uint64("to", state.MaxSchema(), "target schema version (default: the newest this agent supports)")
	apply := fs.Bool("apply", false, "apply the migration (default: dry run)")
	backup := fs.String("backup", "", "backup path (default: STATE.pre-migrate-<unix time>)")
	out := fs.String("o", "table", "output: table or json")
	var checks listFlag
	fs.Var(&checks, "preflight", "preflight check to run first: integrity, disk_space (repeat)")
	if err := loadFlags(fs, args[1:]); err != nil {
		return err
	}
	if *out != "table" && *out != "json" {
		return fmt.Errorf("-o %q: want table or json", *out)
	}
	if _, err := os.Stat(*statePath); err != nil {
		return fmt.Errorf("state file: %w", err)
	}
	st, err := openState(*statePath)
	if err != nil {
		return err
	}
	defer st.Close()
	res := stateMigrateResult{State: *statePath, Schema: st.Schema(), Target: *to, Supported: state.MaxSchema(), Preflight: checks}
	if res.Steps, err = st.PlanMigration(*to); err != nil {
		return err
	}
	if res.Steps == nil {
		res.Steps = []state.MigrationStep{}
	}
	if err := st.Preflight(checks); err != nil {
		return err
	}
	if *apply && len(res.Steps) > 0 {
		res.Backup = *backup
		if res.Backup == "" {
			res.Backup = fmt.Sprintf("%s.pre-migrate-%d", *statePath, time.Now().Unix())
		}
		if err := st.Backup(res.Backup); err != nil {
			return err
		}
		if err := st.Migrate(*to, "rap-node-agent state migrate ("+version+")", res.Backup); err != nil {
			return err
		}
		res.Applied = true
	}
	if res.History, err = st.Migrations(); err != nil {
		return err
	}
	if *out == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Printf("state file:  %s\nschema:      %d (this agent supports up to %d)\ntarget:      %d\n", res.State, res.Schema, res.Supported, res.Target)
	if len(res.Steps) == 0 {
		fmt.Println("steps:       none (already at the target)")
	}
	for _, s := range res.Steps {
		fmt.Printf("step:        %d → %d  %s\n", s.From, s.To, s.Name)
	}
	if len(checks) > 0 {
		fmt.Printf("preflight:   %s passed\n", strings.Join(checks, ", "))
	}
	switch {
	case res.Applied:
		fmt.Printf("applied:     yes (backup %s)\n", res.Backup)
	case len(res.Steps) > 0:
		fmt.Println("applied:     no (dry run; --apply to migrate)")
	}
	for _, h := range res.History {
		fmt.Printf("history:     %d → %d at %s by %s\n", h.From, h.To, h.At.Format(time.RFC3339), h.By)
	}
	return nil
}
