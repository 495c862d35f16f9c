// Package integration holds tests that run the real binaries (rap-authority,
// rapctl, rap-node-agent) as separate processes against a real PostgreSQL, and
// the chaos drills. It has no production code.
package integration
