// Package config holds the server's settings machinery that every command
// shares; here, the one redaction path for secret values.
package config

import (
	"net/url"
	"strings"
)

// Redacted replaces every secret part of a value that is shown.
const Redacted = "REDACTED"

// Redact returns s with every secret in it replaced by Redacted, in every
// form the libraries it goes to accept:
//
//   - a URL (postgres://user:secret@host/db?password=secret&sslpassword=x)
//     keeps its scheme, user, host, path and harmless query parameters;
//     its userinfo password and the values of secret query parameters are
//     replaced;
//   - a key=value connection string (host=db password='s e c' user=app), in
//     libpq's grammar (optional spaces around '=', quoted values with
//     backslash escapes), keeps every pair but the secret ones' values;
//   - anything else (a token, a list of tokens, a URL or connection string
//     that does not parse, key=value text that names none of libpq's
//     connection keywords such as a base64 token ending in '=') is replaced
//     whole.
//
// A parameter is secret when its name contains "pass", "secret", "token" or
// "key" (password, sslpassword, api_key, ...): a harmless one hidden costs
// nothing, a secret one shown cannot be taken back.
func Redact(s string) string {
	if s == "" {
		return ""
	}
	if out, ok := redactURL(s); ok {
		return out
	}
	if out, ok := redactKeywordValue(s); ok {
		return out
	}
	return Redacted
}

// secretParam reports whether a connection parameter's name names a secret.
func secretParam(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"pass", "secret", "token", "key"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// redactURL handles s when it is an absolute URL with a host.
func redactURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" || strings.ContainsAny(s, " \t\n") {
		return "", false
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return "", false // a query Go cannot read may still hold a secret
		}
		for k, vs := range q {
			if secretParam(k) {
				for i := range vs {
					vs[i] = Redacted
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), true
}

// redactKeywordValue handles s when it is a libpq key=value string, read
// with the grammar pgx and libpq use.
func redactKeywordValue(s string) (string, bool) {
	const space = " \t\n\r\v\f"
	var out []string
	connection := false // a keyword that only a connection string has
	rest := strings.TrimLeft(s, space)
	if rest == "" {
		return "", false
	}
	for rest != "" {
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return "", false
		}
		key := strings.Trim(rest[:eq], space)
		if key == "" || strings.ContainsAny(key, space+"'\\") {
			return "", false
		}
		rest = strings.TrimLeft(rest[eq+1:], space)
		var val string
		switch {
		case rest == "":
		case rest[0] == '\'':
			end := 1
			for ; end < len(rest) && rest[end] != '\''; end++ {
				if rest[end] == '\\' {
					end++
				}
			}
			if end >= len(rest) {
				return "", false // unterminated
			}
			val, rest = rest[:end+1], rest[end+1:]
		default:
			end := 0
			for ; end < len(rest) && !strings.ContainsRune(space, rune(rest[end])); end++ {
				if rest[end] == '\\' {
					end++
				}
			}
			end = min(end, len(rest))
			val, rest = rest[:end], rest[end:]
		}
		if rest != "" && !strings.ContainsRune(space, rune(rest[0])) {
			return "", false // a quoted value must be followed by a space
		}
		rest = strings.TrimLeft(rest, space)
		if secretParam(key) {
			val = Redacted
		}
		switch key {
		case "host", "hostaddr", "port", "dbname", "database", "user", "service":
			connection = true
		}
		out = append(out, key+"="+val)
	}
	return strings.Join(out, " "), connection
}
