package geo_test

import (
	"testing"

	"github.com/geosearch/search/internal/geo"
)

func TestConsistencyTokenRoundTrip(t *testing.T) {
	t.Parallel()
	for _, p := range []geo.Position{0, 1, 0x16_B374D848, 1<<64 - 1} {
		got, err := geo.DecodeConsistencyToken(geo.EncodeConsistencyToken(p), "consistency_token")
		if err != nil || got != p {
			t.Errorf("round trip of %d gave %d, %v", p, got, err)
		}
	}
}

func TestConsistencyTokenGarbageIsInvalid(t *testing.T) {
	t.Parallel()
	good := geo.EncodeConsistencyToken(42)
	for name, tok := range map[string]string{
		"empty":        "",
		"short":        good[:len(good)-1],
		"long":         good + "A",
		"not base64":   "!!!!!!!!!!!!",
		"version 2":    "AgAAAAAAAAAq",
		"a page token": "AQAAAAAAAAAAAQ",
		"lsn text":     "0/16B374D848",
	} {
		if _, err := geo.DecodeConsistencyToken(tok, "consistency_token"); geo.ErrorCode(err) != geo.Invalid {
			t.Errorf("%s: %q gave %v, want Invalid", name, tok, err)
		}
	}
}

// FuzzDecodeConsistencyToken: never a panic, every error Invalid, and what
// is accepted encodes back to the same token.
func FuzzDecodeConsistencyToken(f *testing.F) {
	f.Add(geo.EncodeConsistencyToken(7))
	f.Add("")
	f.Add("AQAAAAAAAAAH")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := geo.DecodeConsistencyToken(tok, "consistency_token")
		if err != nil {
			if geo.ErrorCode(err) != geo.Invalid {
				t.Fatalf("error %v is not Invalid", err)
			}
			return
		}
		if again := geo.EncodeConsistencyToken(p); again != tok {
			t.Fatalf("%q decoded to %d, which encodes to %q", tok, p, again)
		}
	})
}
