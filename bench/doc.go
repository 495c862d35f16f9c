// Package bench holds the cross-package benchmarks that print figures beside a
// baseline measured in the same run (see docs/PERFORMANCE.md of the shared
// docs). Package-local benchmarks live next to their code; `make bench` runs
// them all. No production code.
package bench
