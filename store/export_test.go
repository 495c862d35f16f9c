package store

// SimulatePromotion makes db forget which servers it verified the fence on,
// as when every connection reaches a newly promoted standby.
func SimulatePromotion(db *DB) {
	db.servers.mu.Lock()
	db.servers.verified = map[string]uint64{}
	db.servers.mu.Unlock()
}

// SimulateLostClaim makes db believe it claimed epoch for leader on a server
// that is gone (its claim never reached the one it talks to now).
func SimulateLostClaim(db *DB, epoch uint64, leader string) {
	db.servers.mu.Lock()
	db.servers.heldEpoch, db.servers.heldLeader = epoch, leader
	db.servers.verified = map[string]uint64{}
	db.servers.mu.Unlock()
}

// PreferHost exposes preferHost.
var PreferHost = preferHost

// LatestSnapshotSQL and LatestSnapshotsSQL expose the long-poll reads for
// their query-plan test.
var LatestSnapshotSQL, LatestSnapshotsSQL = latestSnapshotSQL, latestSnapshotsSQL

// CopyHeartbeatRows exposes copyHeartbeatRows.
const CopyHeartbeatRows = copyHeartbeatRows
