//go:build race

package config

// raceEnabled reports whether the tests run under the race detector, which makes the large
// config test several times slower without testing anything more: parsing is one goroutine.
const raceEnabled = true
