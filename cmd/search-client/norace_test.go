//go:build !race

package main

// raceEnabled says the tests run with -race: the server they start is
// built with it too.
const raceEnabled = false
