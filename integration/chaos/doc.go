// Package chaos is the tier-3 chaos harness of the RAP Fabric Core and its
// drills (TESTING.md rows R1–R5, E4 and the agent drill).
//
// The harness builds hosts as Linux network namespaces joined by a bridge
// (vishvananda/netlink and netns: one hub namespace holding the bridge, one
// veth pair per host), gives them addresses from 198.18.0.0/24 (inside the
// 198.18.0.0/15 benchmarking range, never routed out), runs a private
// PostgreSQL server and real rap-authority / rap-node-agent processes inside
// them, injects faults — partitions and cuts (nftables drop rules inside the
// namespaces through github.com/google/nftables), random loss (nftables
// numgen random), delay and jitter on TCP byte streams and delay, duplication
// and reordering on UDP datagrams (a fault proxy in the harness: the kernel
// here has no netem qdisc), kill -9, SIGSTOP/SIGCONT and restarts — records
// every client operation in a History and checks invariants over it.
//
// It is test infrastructure only: it needs root, creates and destroys
// namespaces, and must never be imported by production code. Everything it
// creates is torn down through testing.TB.Cleanup, also when a test fails,
// and the teardown verifies that no namespace or process is left behind.
package chaos
