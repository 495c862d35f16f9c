package gossip

import "errors"

// Errors returned by this package; match them with errors.Is. Verification
// errors explain why a gossiped record was ignored.
var (
	// ErrConfig means the Config is invalid; the message names the fields.
	ErrConfig = errors.New("gossip: invalid config")
	// ErrMalformed means a record could not be decoded (garbage, truncated,
	// oversized, or a field out of bounds).
	ErrMalformed = errors.New("gossip: malformed record")
	// ErrOtherCluster means the record is for another cluster.
	ErrOtherCluster = errors.New("gossip: record for another cluster")
	// ErrNameMismatch means the record's node id differs from the memberlist
	// node name carrying it (a node claiming another node's identity or
	// replaying its record).
	ErrNameMismatch = errors.New("gossip: record node id does not match member name")
	// ErrUnknownNode means the directory has no identity key for the node.
	ErrUnknownNode = errors.New("gossip: node not in directory")
	// ErrRevoked means the directory marks the node revoked.
	ErrRevoked = errors.New("gossip: node revoked")
	// ErrBadSignature means the record's signature does not verify under the
	// node's directory identity key.
	ErrBadSignature = errors.New("gossip: bad record signature")
	// ErrStale means the record's incarnation is older than one already seen
	// for that node.
	ErrStale = errors.New("gossip: stale record incarnation")
	// ErrJoin means no seed could be contacted.
	ErrJoin = errors.New("gossip: join failed")
	// ErrShutdown means the instance was shut down.
	ErrShutdown = errors.New("gossip: shut down")
)
