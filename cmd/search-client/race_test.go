//go:build race

package main

// raceEnabled says the tests run with -race: the search-client binary
// they run is built with it too.
const raceEnabled = true
