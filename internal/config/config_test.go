package config_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"

	"github.com/geosearch/search/internal/config"
)

// pages is a component with a dependent default, as grpcapi.Config has.
type pages struct {
	Default int `env:"DEFAULT_SIZE, default=50" live:"true"`
	Max     int `env:"MAX_SIZE, default=1000" live:"true"`
}

func (p *pages) FollowDefaults(isSet func(string) bool) {
	if !isSet("DEFAULT_SIZE") && p.Default > p.Max && p.Max >= 1 {
		p.Default = p.Max
	}
}

func (p pages) Validate() error {
	var errs []error
	if p.Default < 1 {
		errs = append(errs, fmt.Errorf("DEFAULT_SIZE must be at least 1, got %d", p.Default))
	}
	if p.Max < p.Default {
		errs = append(errs, fmt.Errorf("MAX_SIZE (%d) must be at least DEFAULT_SIZE (%d)", p.Max, p.Default))
	}
	return errors.Join(errs...)
}

type store struct {
	URL     string        `env:"STORE_URL" secret:"true"`
	Timeout time.Duration `env:"STORE_TIMEOUT, default=5s"`
	Listen  string        `env:"LISTEN, default=:1" essential:"true"`
}

func (s store) Validate() error {
	var errs []error
	if s.URL == "" {
		errs = append(errs, errors.New("STORE_URL is required"))
	}
	if s.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("STORE_TIMEOUT must be positive, got %s", s.Timeout))
	}
	if s.Listen == "" {
		errs = append(errs, errors.New("LISTEN must not be empty"))
	}
	return errors.Join(errs...)
}

type settings struct {
	Level slog.Level `env:"LEVEL, default=info" live:"true"`
	Debug bool       `env:"DEBUG, default=false"`
	Rate  float64    `env:"RATE, default=1"`
	Pages pages
	Store store
}

func env(kv ...string) envconfig.Lookuper {
	m := map[string]string{"STORE_URL": "postgres://u:hunter2@db/x"}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return envconfig.MapLookuper(m)
}

func vars(rs []config.Rejection) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Var)
	}
	return out
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	got, err := config.Load[settings](context.Background(), env())
	if err != nil {
		t.Fatal(err)
	}
	want := settings{Level: slog.LevelInfo, Rate: 1, Pages: pages{50, 1000}, Store: store{URL: "postgres://u:hunter2@db/x", Timeout: 5 * time.Second, Listen: ":1"}}
	if diff := cmp.Diff(want, got.Config); diff != "" || len(got.Rejected) > 0 {
		t.Errorf("(-want +got)\n%s\nrejected %v", diff, got.Rejected)
	}
}

// TestDependentDefaultsFollow: a value valid alone is never rejected because
// of another setting's default.
func TestDependentDefaultsFollow(t *testing.T) {
	t.Parallel()
	got, err := config.Load[settings](context.Background(), env("MAX_SIZE", "5"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.Pages != (pages{5, 5}) || len(got.Rejected) > 0 {
		t.Errorf("MAX_SIZE=5: pages %+v, rejected %v; want the default page size to follow down to 5", got.Config.Pages, got.Rejected)
	}
}

func TestInvalidTunablesFallBackToDefaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		env      envconfig.Lookuper
		rejected []string
		reason   string
		check    func(settings) bool
	}{
		{"unparsable integer", env("MAX_SIZE", "lots"), []string{"MAX_SIZE"}, `MAX_SIZE: "lots" is not an integer`,
			func(s settings) bool { return s.Pages == pages{50, 1000} }},
		{"out of range", env("MAX_SIZE", "99999999999999999999"), []string{"MAX_SIZE"}, "out of range",
			func(s settings) bool { return s.Pages.Max == 1000 }},
		{"unparsable duration", env("STORE_TIMEOUT", "soon"), []string{"STORE_TIMEOUT"}, `STORE_TIMEOUT: "soon" is not a duration`,
			func(s settings) bool { return s.Store.Timeout == 5*time.Second }},
		{"invalid alone", env("STORE_TIMEOUT", "-1s"), []string{"STORE_TIMEOUT"}, "STORE_TIMEOUT must be positive",
			func(s settings) bool { return s.Store.Timeout == 5*time.Second }},
		{"log level", env("LEVEL", "loud"), []string{"LEVEL"}, `LEVEL: "loud" is not debug, info, warn or error`,
			func(s settings) bool { return s.Level == slog.LevelInfo }},
		{"bool", env("DEBUG", "yes please"), []string{"DEBUG"}, "is not true or false",
			func(s settings) bool { return !s.Debug }},
		{"float", env("RATE", "half"), []string{"RATE"}, "is not a number",
			func(s settings) bool { return s.Rate == 1 }},
		// Both valid alone, in conflict together: the first in variable
		// order stays, the other is rejected.
		{"conflict", env("DEFAULT_SIZE", "10", "MAX_SIZE", "5"), []string{"MAX_SIZE"}, "MAX_SIZE (5) must be at least DEFAULT_SIZE (10)",
			func(s settings) bool { return s.Pages == pages{10, 1000} }},
		// Only valid together: accepted in the second pass.
		{"valid together", env("DEFAULT_SIZE", "2000", "MAX_SIZE", "3000"), nil, "",
			func(s settings) bool { return s.Pages == pages{2000, 3000} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := config.Load[settings](context.Background(), tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.rejected, vars(got.Rejected)); diff != "" {
				t.Errorf("rejected (-want +got)\n%s", diff)
			}
			if tc.reason != "" && (len(got.Rejected) == 0 || !strings.Contains(got.Rejected[0].Reason, tc.reason)) {
				t.Errorf("rejections %+v, want a reason with %q", got.Rejected, tc.reason)
			}
			if !tc.check(got.Config) {
				t.Errorf("config %+v", got.Config)
			}
			// What live reload builds on is valid as it is.
			if _, err := config.Build[settings](context.Background(), got.Accepted); err != nil {
				t.Errorf("Accepted is not valid: %v", err)
			}
		})
	}
}

func TestInvalidEssentialStopsAndNamesEveryBadVariable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		env  envconfig.Lookuper
		want []string
	}{
		{"missing", envconfig.MapLookuper(map[string]string{"MAX_SIZE": "lots", "STORE_TIMEOUT": "-1s"}), []string{"STORE_URL is required", "MAX_SIZE", "STORE_TIMEOUT"}},
		{"tagged essential", env("LISTEN", ""), []string{"LISTEN must not be empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load[settings](context.Background(), tc.env)
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a *config.Error", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	got, err := config.Load[settings](context.Background(), env())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range config.Settings(got.Config) {
		if strings.Contains(s.Value, "hunter2") {
			t.Errorf("%s shows the password: %s", s.Var, s.Value)
		}
	}
	_, err = config.Load[settings](context.Background(), env("STORE_URL", "postgres://u:hunter2@db/x", "STORE_TIMEOUT", "x"))
	if err != nil {
		t.Fatal(err)
	}
}

func TestSettingsAreDerivedFromTheStruct(t *testing.T) {
	t.Parallel()
	var got []string
	for _, s := range config.Settings(settings{}) {
		got = append(got, fmt.Sprintf("%s %s default=%q live=%v secret=%v essential=%v", s.Var, s.Key, s.Default, s.Live, s.Secret, s.Essential))
	}
	want := []string{
		`LEVEL level default="info" live=true secret=false essential=false`,
		`DEBUG debug default="false" live=false secret=false essential=false`,
		`RATE rate default="1" live=false secret=false essential=false`,
		`DEFAULT_SIZE default_size default="50" live=true secret=false essential=false`,
		`MAX_SIZE max_size default="1000" live=true secret=false essential=false`,
		`STORE_URL store_url default="" live=false secret=true essential=true`,
		`STORE_TIMEOUT store_timeout default="5s" live=false secret=false essential=false`,
		`LISTEN listen default=":1" live=false secret=false essential=true`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// badFollower asks about a variable that does not exist: a typo that would
// silently never follow.
type badFollower struct {
	N int `env:"N, default=1"`
}

func (*badFollower) FollowDefaults(isSet func(string) bool) { isSet("M") }

func TestFollowDefaultsMustNameRealVariables(t *testing.T) {
	t.Parallel()
	if _, err := config.Build[badFollower](context.Background(), envconfig.MapLookuper(nil)); err == nil || !strings.Contains(err.Error(), "[M]") {
		t.Errorf("Build: %v, want an error naming M", err)
	}
}

func TestReloaderKeepsThePreviousValueOfARejectedChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	loaded, err := config.Load[settings](ctx, env("STORE_TIMEOUT", "2s"))
	if err != nil {
		t.Fatal(err)
	}
	r := config.NewReloader(loaded.Accepted, loaded.Config, nil, nil)
	cfg, _ := r.Merge(ctx, map[string]string{"max_size": "3", "default_size": "2"})
	if cfg.Pages != (pages{2, 3}) {
		t.Fatalf("pages %+v, want {2 3}", cfg.Pages)
	}
	cfg, notices := r.Merge(ctx, map[string]string{"max_size": "lots", "default_size": "2", "store_timeout": "1s", "nope": "1"})
	if cfg.Pages != (pages{2, 3}) || cfg.Store.Timeout != 2*time.Second {
		t.Errorf("config %+v: want the previous page sizes and the environment's timeout", cfg)
	}
	if diff := cmp.Diff([]string{"MAX_SIZE"}, vars(r.Rejected())); diff != "" {
		t.Errorf("rejected (-want +got)\n%s", diff)
	}
	var msgs []string
	for _, n := range notices {
		msgs = append(msgs, n.Msg)
	}
	if len(msgs) != 3 {
		t.Errorf("notices %q: want the rejected change, the environment winning, and the unknown key", msgs)
	}
}
