package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Links in answers (self, next, items, tiles) are absolute. Their base is,
// in this order:
//
//   - HTTP_PUBLIC_URL when set (pg_featureserv's UrlBase): the address
//     clients reach the API at, behind whatever proxies, path prefix
//     included; no request header changes it.
//   - With HTTP_TRUST_FORWARDED=true, what the proxy in front says the
//     client used: the first element of Forwarded (RFC 7239: proto=,
//     host=), else X-Forwarded-Proto and X-Forwarded-Host. Only a proxy
//     that sets or overwrites these headers may be trusted so: a client
//     could send them itself.
//   - Otherwise the request itself: https when it came over TLS, and its
//     Host header (which Go's server has checked for a valid host).

// publicBase checks and normalizes an HTTP_PUBLIC_URL: an absolute http or
// https URL without query or fragment; its path, without a trailing
// slash, prefixes every link.
func publicBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("HTTP_PUBLIC_URL must be an absolute http:// or https:// URL without user, query or fragment, got %q", raw)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

type baseKey struct{}

// withBase puts the links' base for r into its context, for baseURL.
func (s *Server) withBase(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), baseKey{}, s.base(r)))
}

// base is the links' base for r (see above).
func (s *Server) base(r *http.Request) string {
	if s.publicBase != "" {
		return s.publicBase
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if s.cfg.TrustForwarded {
		proto, fhost := forwarded(r.Header)
		if proto == "http" || proto == "https" {
			scheme = proto
		}
		if validHost(fhost) {
			host = fhost
		}
	}
	return scheme + "://" + host
}

// baseURL is the base of absolute links for r: scheme, host and any path
// prefix, without a trailing slash.
func baseURL(r *http.Request) string {
	if b, ok := r.Context().Value(baseKey{}).(string); ok {
		return b
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// forwarded returns the protocol and host the client used, as the proxy
// reports them: the first element of Forwarded, else the first values of
// X-Forwarded-Proto and X-Forwarded-Host. Either may be empty.
func forwarded(h http.Header) (proto, host string) {
	if fwd := h.Values("Forwarded"); len(fwd) > 0 {
		first, _, _ := strings.Cut(fwd[0], ",")
		for _, pair := range strings.Split(first, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"`)
			switch strings.ToLower(k) {
			case "proto":
				proto = strings.ToLower(v)
			case "host":
				host = v
			}
		}
		return proto, host
	}
	firstValue := func(name string) string {
		v, _, _ := strings.Cut(h.Get(name), ",")
		return strings.TrimSpace(v)
	}
	return strings.ToLower(firstValue("X-Forwarded-Proto")), firstValue("X-Forwarded-Host")
}

// validHost reports whether h is a host, with an optional port, that may
// go into a link: a name of letters, digits, '-' and '.', or an IP address.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		host, port = h, ""
	}
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
	}
	if strings.HasPrefix(host, "[") || net.ParseIP(host) != nil {
		return net.ParseIP(strings.Trim(host, "[]")) != nil
	}
	for _, c := range host {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return host != ""
}
