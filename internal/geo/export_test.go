package geo

// CountPositions exposes countPositions to the package's external tests.
var CountPositions = countPositions

// FilterFingerprint exposes filterFingerprint to the package's external
// tests.
var FilterFingerprint = filterFingerprint
