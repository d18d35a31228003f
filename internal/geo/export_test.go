package geo

// CountPositions exposes countPositions to the package's external tests.
var CountPositions = countPositions
