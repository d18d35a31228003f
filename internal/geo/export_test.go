package geo

// CountPositions exposes countPositions to the package's external tests.
var CountPositions = countPositions

// FilterFingerprint exposes filterFingerprint to the package's external
// tests.
func FilterFingerprint(f Filter) uint64 {
	fp, _ := filterFingerprint(f)
	return fp
}

// EncodeStablePageToken is EncodePageToken issuing versions 3 and 4 only.
func EncodeStablePageToken(f Filter, c Cursor) string { return encodePageToken(f, c, false) }
