package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/geosearch/search/internal/httpapi"
)

// TestLinksFollowThePublicURLOrTrustedProxiesOnly: the next link of an
// items page is built on HTTP_PUBLIC_URL when it is set, on Forwarded or
// X-Forwarded-* only with HTTP_TRUST_FORWARDED, and else on the request.
func TestLinksFollowThePublicURLOrTrustedProxiesOnly(t *testing.T) {
	t.Parallel()
	fwd := []string{"Forwarded", `for=192.0.2.1;proto=https;host="geo.example.org", for=10.0.0.1`}
	xfwd := []string{"X-Forwarded-Proto", "https", "X-Forwarded-Host", "geo.example.org, proxy.internal"}
	bad := []string{"X-Forwarded-Proto", "gopher", "X-Forwarded-Host", `evil.example"><script>`}
	cases := []struct {
		name   string
		cfg    func(*httpapi.Config)
		header []string
		want   string // the next link's start; {host} is the request's Host
	}{
		{"no setting, forwarded ignored", func(*httpapi.Config) {}, fwd, "http://{host}/collections/default/items?"},
		{"no setting, x-forwarded ignored", func(*httpapi.Config) {}, xfwd, "http://{host}/collections/default/items?"},
		{"trusted, Forwarded", func(c *httpapi.Config) { c.TrustForwarded = true }, fwd, "https://geo.example.org/collections/default/items?"},
		{"trusted, X-Forwarded", func(c *httpapi.Config) { c.TrustForwarded = true }, xfwd, "https://geo.example.org/collections/default/items?"},
		{"trusted, malformed values ignored", func(c *httpapi.Config) { c.TrustForwarded = true }, bad, "http://{host}/collections/default/items?"},
		{"public URL with a prefix", func(c *httpapi.Config) { c.PublicURL = "https://maps.example.com/geo/" }, fwd, "https://maps.example.com/geo/collections/default/items?"},
		{"public URL wins over trusted headers", func(c *httpapi.Config) {
			c.PublicURL = "https://maps.example.com"
			c.TrustForwarded = true
		}, xfwd, "https://maps.example.com/collections/default/items?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := start(t, func(s *setup) { tc.cfg(&s.cfg) })
			req, err := http.NewRequest(http.MethodGet, a.base+"/collections/default/items?limit=2", nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				req.Header.Set(tc.header[i], tc.header[i+1])
			}
			resp, err := a.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var page struct {
				Links []struct{ Rel, Href string }
			}
			if err := json.Unmarshal(body, &page); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, %v: %s", resp.StatusCode, err, body)
			}
			want := strings.ReplaceAll(tc.want, "{host}", strings.TrimPrefix(a.base, "http://"))
			next := ""
			for _, l := range page.Links {
				if l.Rel == "next" {
					next = l.Href
				}
			}
			if !strings.HasPrefix(next, want) {
				t.Errorf("next link %q, want it to start with %q", next, want)
			}
		})
	}
}

func TestPublicURLMustBeAnAbsoluteHTTPURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"geo.example.org", "ftp://geo.example.org", "https://geo.example.org/?a=1", "https://user:pw@geo.example.org", "https://"} {
		cfg := httpapi.Config{ListenAddr: "127.0.0.1:0", ServiceName: "s", MaxBodyBytes: 1 << 20, MaxInFlight: 1,
			RequestTimeout: 1, ReadHeaderTimeout: 1, ReadTimeout: 1, WriteTimeout: 1, IdleTimeout: 1,
			TileMaxBytes: 512 << 10, TileMaxAge: 1, PublicURL: u}
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "HTTP_PUBLIC_URL") {
			t.Errorf("HTTP_PUBLIC_URL=%s: %v, want it refused", u, err)
		}
	}
}
