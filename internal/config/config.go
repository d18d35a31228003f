// Package config reads settings structs from the environment (the interface
// envconsul drives), validates them, lists them with secrets redacted, and
// follows a Consul KV prefix for live changes.
//
// A settings struct is any struct whose fields carry go-envconfig tags
// (`env:"NAME, default=V"`), directly or in nested component structs. Two
// more tags describe a field: live:"true" (the setting can change while
// running) and secret:"true" (never printed). Everything else is derived
// from the struct: the list of settings, which ones are essential, and the
// checks to run, so a new field needs no edit here.
//
// The rule for invalid values:
//
//   - A tunable (a setting with a default) that arrives invalid, alone or
//     against other settings, is rejected: it starts at its default, and the
//     rejection is reported (Loaded.Rejected) for the command to log, count
//     and show. A typo pushed to every instance through Consul KV must not
//     take the fleet down.
//   - An essential setting (no default, or tagged essential:"true": the
//     database, the listen address, TLS files, tokens, where the instance is
//     advertised) that is invalid stops the process: no default could
//     stand in for it safely.
//   - A default that depends on another setting follows it: a component
//     whose struct has a FollowDefaults(isSet) method adjusts the settings
//     that were left unset (the default page size never exceeds the maximum,
//     as AIP-158 has it), so no value that is valid alone is rejected
//     because of another setting's default.
//
// Every struct in the tree with a Validate() error method is validated; each
// checks its own fields.
package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Error is a configuration that cannot run: an essential setting is
// invalid. Commands exit with their configuration status for it.
type Error struct{ Err error }

func (e *Error) Error() string { return "configuration: " + e.Err.Error() }

// Unwrap returns the underlying errors.
func (e *Error) Unwrap() error { return e.Err }

// Rejection is a tunable whose given value was refused: the setting runs at
// its default (or, for a live change, keeps its previous value) instead.
type Rejection struct {
	Var    string // the environment variable
	Key    string // its Consul KV key
	Value  string // the refused value; secrets redacted
	Reason string
}

// Loaded is a configuration read by Load.
type Loaded[T any] struct {
	// Config is the configuration in effect.
	Config T
	// Rejected lists the tunables refused, in variable order.
	Rejected []Rejection
	// Accepted is the lookuper Config was built from: the one given to
	// Load without the rejected variables. Live reload builds on it.
	Accepted envconfig.Lookuper
}

// Validator is a settings struct that checks its own fields.
type Validator interface{ Validate() error }

// DefaultFollower is a settings struct some of whose defaults depend on
// other settings. FollowDefaults adjusts the fields whose variable isSet
// says was not given, so that they fit the ones that were.
type DefaultFollower interface {
	FollowDefaults(isSet func(name string) bool)
}

// Load reads a T through l, applying the rule in the package comment: an
// invalid essential setting is an *Error naming every invalid variable; an
// invalid tunable is rejected and left at its default.
//
// Tunables are added to the essentials in passes, in variable order, each
// kept if the configuration stays valid with it; a value that conflicts
// with another given value is rejected, and which of the two depends only
// on that order.
func Load[T any](ctx context.Context, l envconfig.Lookuper) (Loaded[T], error) {
	specs := specsOf(reflect.TypeFor[T]())
	_, parseErrs, err := decode[T](ctx, l, specs)
	if err != nil {
		return Loaded[T]{}, err
	}
	var tunables []string       // given, parsable
	hidden := map[string]bool{} // never in a trial: unparsable values
	var fatal []error
	for _, s := range specs {
		if _, given := l.Lookup(s.Var); !given {
			continue
		}
		if err := parseErrs[s.Var]; err != nil {
			hidden[s.Var] = true
			if s.Essential {
				fatal = append(fatal, err)
			}
			continue
		}
		if !s.Essential {
			tunables = append(tunables, s.Var)
		}
	}
	without := func(accepted map[string]bool) envconfig.Lookuper {
		return envconfig.LookuperFunc(func(name string) (string, bool) {
			if hidden[name] || slices.Contains(tunables, name) && !accepted[name] {
				return "", false
			}
			return l.Lookup(name)
		})
	}
	if _, err := build[T](ctx, without(nil), specs); err != nil || len(fatal) > 0 {
		// Name every invalid variable, the tunables too, as one message.
		var all []error
		for _, s := range specs {
			if e := parseErrs[s.Var]; e != nil {
				all = append(all, e)
			}
		}
		if _, verr := build[T](ctx, without(setOf(tunables)), specs); verr != nil {
			all = append(all, verr)
		} else if err != nil {
			all = append(all, err)
		}
		return Loaded[T]{}, &Error{Err: errors.Join(all...)}
	}

	accepted := map[string]bool{}
	pending := slices.Clone(tunables)
	for progress := true; progress && len(pending) > 0; {
		progress = false
		rest := pending[:0]
		for _, name := range pending {
			trial := maps.Clone(accepted)
			trial[name] = true
			if _, err := build[T](ctx, without(trial), specs); err == nil {
				accepted, progress = trial, true
			} else {
				rest = append(rest, name)
			}
		}
		pending = rest
	}
	byVar := specsByVar(specs)
	var rejected []Rejection
	for _, s := range specs {
		reason := parseErrs[s.Var]
		if reason == nil && slices.Contains(pending, s.Var) {
			trial := maps.Clone(accepted)
			trial[s.Var] = true
			_, reason = build[T](ctx, without(trial), specs)
		}
		if reason == nil || s.Essential {
			continue
		}
		v, _ := l.Lookup(s.Var)
		rejected = append(rejected, byVar[s.Var].rejection(v, reason))
	}
	final := without(accepted)
	cfg, err := build[T](ctx, final, specs)
	if err != nil { // cannot happen: accepted only ever holds valid states
		return Loaded[T]{}, &Error{Err: err}
	}
	return Loaded[T]{Config: cfg, Rejected: rejected, Accepted: final}, nil
}

// Build reads a T through l and returns an *Error unless every value is
// valid: what live reload checks a change against, and what tests use.
func Build[T any](ctx context.Context, l envconfig.Lookuper) (T, error) {
	cfg, err := build[T](ctx, l, specsOf(reflect.TypeFor[T]()))
	if err != nil {
		return cfg, &Error{Err: err}
	}
	return cfg, nil
}

func build[T any](ctx context.Context, l envconfig.Lookuper, specs []spec) (T, error) {
	cfg, parseErrs, err := decode[T](ctx, l, specs)
	if err != nil {
		return cfg, err
	}
	var errs []error
	for _, s := range specs {
		if e := parseErrs[s.Var]; e != nil {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		return cfg, errors.Join(errs...)
	}
	known := specsByVar(specs)
	var unknown []string
	isSet := func(name string) bool {
		if _, ok := known[name]; !ok {
			unknown = append(unknown, name)
		}
		_, ok := l.Lookup(name)
		return ok
	}
	v := reflect.ValueOf(&cfg).Elem()
	eachStruct(v, func(s reflect.Value) {
		if f, ok := s.Addr().Interface().(DefaultFollower); ok {
			f.FollowDefaults(isSet)
		}
	})
	if len(unknown) > 0 {
		return cfg, fmt.Errorf("config: FollowDefaults asked about unknown variables %v", unknown)
	}
	eachStruct(v, func(s reflect.Value) {
		if c, ok := s.Addr().Interface().(Validator); ok {
			if err := c.Validate(); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return cfg, errors.Join(errs...)
}

// eachStruct calls fn on v (a struct) and on every nested settings struct,
// outermost first.
func eachStruct(v reflect.Value, fn func(reflect.Value)) {
	fn(v)
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && f.Tag.Get("env") == "" && f.Type.Kind() == reflect.Struct {
			eachStruct(v.Field(i), fn)
		}
	}
}

// decode runs go-envconfig over l. A value that does not parse is reported
// under its variable, with a reason built from the field's type, and its
// field is left at its default: go-envconfig stops at the first bad field,
// so decode retries with each bad variable hidden. A mutator tells which
// variable was being decoded when go-envconfig failed (mutators run on every
// given or defaulted value, just before it is converted). An error that no
// given value explains (a bad default, a bad tag) is returned as it is: a
// bug, not a configuration problem.
func decode[T any](ctx context.Context, l envconfig.Lookuper, specs []spec) (T, map[string]error, error) {
	byVar := specsByVar(specs)
	bad := map[string]error{}
	masked := envconfig.LookuperFunc(func(name string) (string, bool) {
		if bad[name] != nil {
			return "", false
		}
		return l.Lookup(name)
	})
	for {
		var cfg T
		var last string
		track := envconfig.MutatorFunc(func(_ context.Context, key, _, _, value string) (string, bool, error) {
			last = key
			return value, false, nil
		})
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg, Lookuper: masked, Mutators: []envconfig.Mutator{track}})
		if err == nil {
			return cfg, bad, nil
		}
		s, known := byVar[last]
		value, given := masked.Lookup(last)
		if !known || !given {
			return cfg, bad, fmt.Errorf("config: %w", err)
		}
		bad[last] = s.parseError(value, err)
	}
}

// spec describes one setting of a settings struct.
type spec struct {
	Var       string
	Default   string
	Live      bool
	Secret    bool
	Essential bool
	typ       reflect.Type
	index     []int
}

// specsOf lists the settings of struct type t, in declaration order.
func specsOf(t reflect.Type) []spec {
	var out []spec
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			idx := append(slices.Clone(index), i)
			name, opts, _ := strings.Cut(f.Tag.Get("env"), ",")
			name = strings.TrimSpace(name)
			if name == "" {
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type, idx)
				}
				continue
			}
			s := spec{Var: name, Live: f.Tag.Get("live") == "true", Secret: f.Tag.Get("secret") == "true", typ: f.Type, index: idx}
			hasDefault := false
			for _, o := range strings.Split(opts, ",") {
				if d, ok := strings.CutPrefix(strings.TrimSpace(o), "default="); ok {
					s.Default, hasDefault = d, true
				}
			}
			s.Essential = !hasDefault || f.Tag.Get("essential") == "true"
			out = append(out, s)
		}
	}
	walk(t, nil)
	return out
}

func specsByVar(specs []spec) map[string]spec {
	m := make(map[string]spec, len(specs))
	for _, s := range specs {
		m[s.Var] = s
	}
	return m
}

func setOf(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// Key is the Consul KV key of variable name: its lower-case form, which
// `envconsul -upcase` turns back into the variable.
func Key(name string) string { return strings.ToLower(name) }

// parseError says why value is not a valid s, from the field's type and
// the typed error go-envconfig passed on, never from its message.
func (s spec) parseError(value string, err error) error {
	shown := value
	if s.Secret {
		shown = Redact(value)
	}
	want := ""
	switch t := s.typ; {
	case t == reflect.TypeFor[time.Duration]():
		want = "a duration such as 300ms, 5s or 1m"
	case t == reflect.TypeFor[slog.Level]():
		want = "debug, info, warn or error"
	case t.Kind() == reflect.Bool:
		want = "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		want = "an integer"
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		want = "a number"
	}
	var ne *strconv.NumError
	if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
		return fmt.Errorf("%s: %q is out of range for %s", s.Var, shown, want)
	}
	if want != "" {
		return fmt.Errorf("%s: %q is not %s", s.Var, shown, want)
	}
	if s.Secret {
		return fmt.Errorf("%s: the value is not valid", s.Var)
	}
	// A type of its own (a decoder): its innermost error says why.
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(err) {
		err = u
	}
	return fmt.Errorf("%s: %q is not valid: %w", s.Var, shown, err)
}

func (s spec) rejection(value string, reason error) Rejection {
	if s.Secret {
		value = Redact(value)
	}
	return Rejection{Var: s.Var, Key: Key(s.Var), Value: value, Reason: reason.Error()}
}
