//go:build !race

package udpconn

// raceEnabled: see race_test.go.
const raceEnabled = false
