package raftnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/rap-fabric/core/fsm"
)

// RecoverResult describes the Raft state of a stopped member on disk and,
// after Recover, the configuration written into it.
type RecoverResult struct {
	// LastIndex and LastTerm are those of the newest entry on disk (log or
	// snapshot): among several survivors, recover the one with the highest.
	LastIndex uint64
	LastTerm  uint64
	// Before is the configuration the member last knew.
	Before []Server
	// After is the configuration written (empty for a dry run).
	After []Server
	// Term is the current term stored on disk (the next election runs in a
	// higher one); after Recover with a minimum term, at least that minimum.
	Term uint64
}

// keyCurrentTerm is the stable-store key under which hashicorp/raft keeps
// the current term (raft.go, keyCurrentTerm).
var keyCurrentTerm = []byte("CurrentTerm")

// Recover forces a stopped member whose group lost its quorum for good to
// restart as the only voter of a new configuration, keeping every entry of
// its log (hashicorp/raft's RecoverCluster: the log is replayed into newFSM,
// written as a snapshot carrying the new configuration, and truncated). The
// member is found in its last configuration by id; its address stays.
//
// Raft state lives in dataDir (raft.db and snapshots/, as New lays it out).
// The member must not be running (the log store's file lock says so). With
// dryRun nothing is written: the result shows what the member holds.
//
// WARNING: entries the member holds but the lost quorum never committed
// become committed. Recover the survivor with the highest LastIndex, and
// recover one survivor only: the others must join the recovered member again
// with fresh data directories.
//
// minTerm, when above the stored current term, raises it (terms only move
// forward, so this is always safe): the recovered member's first election
// then runs in a term above minTerm. The caller passes the PostgreSQL fence
// epoch, which a lost quorum may have moved past this member's log; the
// epoch claimed for that term is then above the fence (fsm: an epoch is at
// least its claim's term) and the claim is not refused as stale.
func Recover(dataDir, id string, newFSM func() raft.FSM, dryRun bool, minTerm uint64, logger hclog.Logger) (RecoverResult, error) {
	var res RecoverResult
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if _, err := os.Stat(filepath.Join(dataDir, "raft.db")); err != nil {
		return res, fmt.Errorf("raftnode: recover: no Raft state in %s: %w", dataDir, err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dataDir, "raft.db"), BoltOptions: &bbolt.Options{Timeout: 2 * time.Second}})
	if err != nil {
		return res, fmt.Errorf("raftnode: recover: open log store (is the authority still running?): %w", err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, 2, logger.Named("snapshot"))
	if err != nil {
		return res, fmt.Errorf("raftnode: recover: snapshot store: %w", err)
	}
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = logger

	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return res, fmt.Errorf("raftnode: recover: %w", err)
	}
	if !has {
		return res, fmt.Errorf("raftnode: recover: %s holds no Raft state", dataDir)
	}
	res.LastIndex, res.LastTerm, err = lastEntry(store, snaps)
	if err != nil {
		return res, err
	}
	if res.Term, err = store.GetUint64(keyCurrentTerm); err != nil && !errors.Is(err, raftboltdb.ErrKeyNotFound) {
		return res, fmt.Errorf("raftnode: recover: current term: %w", err)
	}
	conf, err := raft.GetConfiguration(rc, newFSM(), store, store, snaps, trans)
	if err != nil {
		return res, fmt.Errorf("raftnode: recover: read the configuration: %w", err)
	}
	var self *raft.Server
	for i, s := range conf.Servers {
		res.Before = append(res.Before, serverOf(s))
		if s.ID == raft.ServerID(id) {
			self = &conf.Servers[i]
		}
	}
	if self == nil {
		return res, fmt.Errorf("raftnode: recover: %q is not in its own last configuration %v", id, res.Before)
	}
	after := raft.Configuration{Servers: []raft.Server{{ID: self.ID, Address: self.Address, Suffrage: raft.Voter}}}
	if dryRun {
		return res, nil
	}
	rc = raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.Logger = logger
	if err := raft.RecoverCluster(rc, newFSM(), store, store, snaps, trans, after); err != nil {
		return res, fmt.Errorf("raftnode: recover: %w", err)
	}
	if minTerm > res.Term {
		if err := store.SetUint64(keyCurrentTerm, minTerm); err != nil {
			return res, fmt.Errorf("raftnode: recover: raise the current term to %d: %w", minTerm, err)
		}
		res.Term = minTerm
	}
	res.After = []Server{serverOf(after.Servers[0])}
	return res, nil
}

// lastEntry is the index and term of the newest log entry or snapshot.
func lastEntry(store *raftboltdb.BoltStore, snaps raft.SnapshotStore) (uint64, uint64, error) {
	var idx, term uint64
	if metas, err := snaps.List(); err == nil && len(metas) > 0 {
		idx, term = metas[0].Index, metas[0].Term
	}
	last, err := store.LastIndex()
	if err != nil {
		return 0, 0, fmt.Errorf("raftnode: recover: last index: %w", err)
	}
	if last > idx {
		var l raft.Log
		if err := store.GetLog(last, &l); err != nil {
			return 0, 0, fmt.Errorf("raftnode: recover: last entry: %w", err)
		}
		idx, term = l.Index, l.Term
	}
	return idx, term, nil
}

func serverOf(s raft.Server) Server {
	out := Server{ID: string(s.ID), Address: string(s.Address), Suffrage: fsm.SuffrageVoter}
	if s.Suffrage != raft.Voter {
		out.Suffrage = fsm.SuffrageNonvoter
	}
	return out
}
