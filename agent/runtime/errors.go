package runtime

import (
	"errors"

	"github.com/rap-fabric/core/agent/statusclient"
)

// Errors of the agent runtime, recognized with errors.Is.
var (
	// ErrAlreadyEnrolled: the state already holds an enrolled membership for
	// the cluster behind this CA pin (the agent does not enroll twice).
	ErrAlreadyEnrolled = errors.New("already enrolled in this cluster")
	// ErrRejected: the owner rejected the join request.
	ErrRejected = errors.New("join request rejected")
	// ErrExpired: the join request expired before anyone reviewed it.
	ErrExpired = errors.New("join request expired")
	// ErrInvalidOptions: missing or malformed options.
	ErrInvalidOptions = errors.New("invalid options")
	// ErrBadEnrollment: the authority's answer did not verify (wrong CA, a
	// certificate for another key or cluster).
	ErrBadEnrollment = errors.New("enrollment answer did not verify")
	// ErrNoMemberships: the state holds no enrolled membership to run.
	ErrNoMemberships = errors.New("no enrolled memberships in the state file")
	// ErrAgentNotRunning: the status socket does not answer (the same error
	// as statusclient.ErrAgentNotRunning).
	ErrAgentNotRunning = statusclient.ErrAgentNotRunning
)
