package config_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/geosearch/search/internal/config"
)

func TestRedactHidesEverySecretForm(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t"
	tests := []struct {
		name, in, want string
		// pgx: the input is a connection string pgx accepts, and its
		// password is secret (checked, so that the forms tested are the
		// forms the library reads).
		pgx bool
	}{
		{name: "url userinfo", in: "postgres://app:s3cr3t@db:5432/search?sslmode=disable",
			want: "postgres://app:REDACTED@db:5432/search?sslmode=disable", pgx: true},
		{name: "url query password", in: "postgres://app@db/x?password=s3cr3t",
			want: "postgres://app@db/x?password=REDACTED", pgx: true},
		{name: "url query sslpassword and password", in: "postgresql://db/x?sslpassword=s3cr3t&password=s3cr3t&application_name=a",
			want: "postgresql://db/x?application_name=a&password=REDACTED&sslpassword=REDACTED"},
		{name: "url query escaped name", in: "postgres://db/x?pass%77ord=s3cr3t",
			want: "postgres://db/x?password=REDACTED", pgx: true},
		{name: "url userinfo and query", in: "postgres://app:s3cr3t@db/x?password=s3cr3t",
			want: "postgres://app:REDACTED@db/x?password=REDACTED", pgx: true},
		{name: "url with a fragment", in: "postgres://app:s3cr3t@db/x#s3cr3t",
			want: "postgres://app:REDACTED@db/x"},
		{name: "url multi-host", in: "postgres://app:s3cr3t@h1:5432,h2:5432/x",
			want: "postgres://app:REDACTED@h1:5432,h2:5432/x", pgx: true},
		{name: "keyword value", in: "host=db user=app password=s3cr3t dbname=x",
			want: "host=db user=app password=REDACTED dbname=x", pgx: true},
		{name: "keyword value, spaces around =", in: "host=db password = s3cr3t dbname=x",
			want: "host=db password=REDACTED dbname=x", pgx: true},
		{name: "keyword value, quoted with spaces", in: "host=db password='s3cr3t and more' user=app",
			want: "host=db password=REDACTED user=app", pgx: true},
		{name: "keyword value, quoted with an escaped quote", in: `password='s3cr3t\' user=x' host=db`,
			want: "password=REDACTED host=db", pgx: true},
		{name: "keyword value, escaped space", in: `host=db password=s3cr3t\ more`,
			want: "host=db password=REDACTED", pgx: true},
		{name: "keyword value, sslpassword", in: "host=db sslpassword=s3cr3t",
			want: "host=db sslpassword=REDACTED"},
		{name: "keyword value, upper case", in: "host=db PASSWORD=s3cr3t",
			want: "host=db PASSWORD=REDACTED"},
		{name: "keyword value, unterminated quote", in: "host=db password='s3cr3t",
			want: "REDACTED"},
		{name: "token", in: "s3cr3t", want: "REDACTED"},
		{name: "token list", in: "s3cr3t,s3cr3t-2", want: "REDACTED"},
		{name: "token with =", in: "abc=s3cr3t", want: "REDACTED"},
		{name: "base64 token", in: "czNjcjN0czNjcjN0czNjcjN0=", want: "REDACTED"},
		{name: "url that Go cannot parse", in: "postgres://app:s3cr3t@db:port/x", want: "REDACTED"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := config.Redact(tt.in)
			if got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if strings.Contains(got, secret) {
				t.Errorf("Redact(%q) = %q shows the secret", tt.in, got)
			}
			if tt.pgx {
				c, err := pgconn.ParseConfig(tt.in)
				if err != nil {
					t.Fatalf("pgx does not accept %q: %v", tt.in, err)
				}
				if !strings.HasPrefix(c.Password, secret) {
					t.Fatalf("pgx reads password %q from %q, want the secret: the case tests the wrong form", c.Password, tt.in)
				}
			}
		})
	}
}
