//go:build race

package gateway_test

// raceEnabled says the tests run with the race detector.
const raceEnabled = true
