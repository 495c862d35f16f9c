package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/rap-fabric/core/daemon"
	"github.com/rap-fabric/core/flagconf"
)

// recoverCmd implements `rap-authority recover`: lost-quorum recovery of a
// stopped authority (docs/operations.md). --dry-run prints the last index,
// term and configuration on disk, to pick the survivor with the newest log.
// It reads the PostgreSQL fence first and raises the stored Raft term to its
// epoch, so the recovered leader's epoch lies above a fence the lost quorum
// may have moved past this log (daemon.RecoverAboveFence).
func recoverCmd(args []string) error {
	fs := flag.NewFlagSet("recover", flag.ContinueOnError)
	cfgFile := fs.String("config", "", "the authority's JSON config file (id and data-dir are read from it unless given)")
	id := fs.String("id", "", "this authority's node id")
	dir := fs.String("data-dir", "", "this authority's data directory")
	dbURL := fs.String("database-url", "", "PostgreSQL URL, to read the authority fence (or DATABASE_URL)")
	dry := fs.Bool("dry-run", false, "only print what is on disk; change nothing")
	// The run config holds keys this command has no flag for: it is read
	// below, not by the loader (which refuses unknown keys).
	if err := flagconf.Load(fs, args, flagconf.Options{EnvPrefix: "RAP_AUTHORITY_", Warn: warnWriter{},
		Legacy: func(name string) string { return flagconf.EnvName("RAP_", name) }}); err != nil {
		return err
	}
	if *cfgFile != "" {
		if err := fromConfigFile(*cfgFile, map[string]*string{"id": id, "data-dir": dir, "database-url": dbURL}, givenOutsideFile(fs)); err != nil {
			return err
		}
	}
	if *dbURL == "" {
		*dbURL = os.Getenv("DATABASE_URL")
	}
	if *id == "" || *dir == "" || *dbURL == "" {
		return errors.New("--id, --data-dir and --database-url are required (or --config)")
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "rap-authority", Level: hclog.Warn})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := daemon.RecoverAboveFence(ctx, *dir, *id, *dbURL, *dry, log)
	if err != nil {
		return err
	}
	fmt.Printf("last entry on disk: index %d, term %d\n", res.LastIndex, res.LastTerm)
	fmt.Printf("PostgreSQL fence: epoch %d (leader %s)\n", res.Fence.Epoch, res.Fence.LeaderID)
	fmt.Println("configuration on disk:")
	for _, s := range res.Before {
		fmt.Printf("  %s %s (%s)\n", s.ID, s.Address, s.Suffrage)
	}
	if *dry {
		fmt.Println("dry run: nothing changed")
		return nil
	}
	fmt.Printf("current term: %d (the next election runs above the fence epoch)\n", res.Term)
	fmt.Printf("recovered: %s is now the only voter (%s); start it as before, then remove the lost members\n", res.After[0].ID, res.After[0].Address)
	fmt.Println("(rapctl authority remove ID) and join new ones (rapctl authority join-token create).")
	return nil
}
