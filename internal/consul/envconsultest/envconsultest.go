// Package envconsultest runs a command the way envconsul does, for tests:
// its environment is the keys under a Consul KV prefix, upper-cased, on top
// of a base environment, and whenever those keys change the command is
// stopped (after a random splay, with the kill signal, SIGKILL after the
// kill timeout) and started again with the new environment. A command that
// exits by itself ends its supervisor, as envconsul exits with its child.
//
// The process handling is consul-template's child package, the very
// supervisor envconsul v0.13 uses (envconsul's own module is not served by
// the module proxy). Each Supervisor is one envconsul process with its own
// KV watch, so several of them see a change at the same moment, as a fleet
// of envconsul processes does. Test code only: it keeps consul-template out
// of the production binaries.
package envconsultest

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/consul-template/child"
	"github.com/hashicorp/consul/api"
)

// Options configure a Supervisor, after envconsul's flags of the same names.
type Options struct {
	// Prefix is the KV prefix (-prefix, with no_prefix: keys relative to it).
	Prefix string
	// Command and Args are what runs.
	Command string
	Args    []string
	// Env is the base environment (envconsul passes its own unless
	// pristine); KV keys override it.
	Env []string
	// KillSignal (default SIGTERM), KillTimeout (default 30s) and Splay
	// are exec's kill_signal, kill_timeout and splay.
	KillSignal  os.Signal
	KillTimeout time.Duration
	Splay       time.Duration
	// Output receives the command's stdout and stderr, across restarts.
	Output io.Writer
}

// Supervisor is one envconsul process: a KV watch and the child it runs.
type Supervisor struct {
	opts   Options
	kv     *api.KV
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	child    *child.Child
	env      map[string]string // from KV, in effect
	starts   int               // children started
	exitCode int
	exited   bool // the child exited by itself, ending the supervisor
	err      error
}

// invalid is what envconsul's sanitize replaces with "_".
var invalid = regexp.MustCompile(`[^a-zA-Z0-9_]`)

// Start reads the prefix, starts the child and follows the prefix until
// Stop or until the child exits by itself.
func Start(client *api.Client, opts Options) (*Supervisor, error) {
	if opts.KillSignal == nil {
		opts.KillSignal = syscall.SIGTERM
	}
	if opts.KillTimeout == 0 {
		opts.KillTimeout = 30 * time.Second
	}
	if opts.Output == nil {
		opts.Output = io.Discard
	}
	opts.Prefix = strings.TrimSuffix(opts.Prefix, "/") + "/"
	ctx, cancel := context.WithCancel(context.Background())
	s := &Supervisor{opts: opts, kv: client.KV(), cancel: cancel, done: make(chan struct{})}
	env, index, err := s.read(ctx, 0)
	if err != nil {
		cancel()
		return nil, err
	}
	s.mu.Lock()
	err = s.replace(env)
	s.mu.Unlock()
	if err != nil {
		cancel()
		return nil, err
	}
	go s.run(ctx, index)
	return s, nil
}

// read returns the environment the keys under the prefix make, blocking
// until the KV index passes index.
func (s *Supervisor) read(ctx context.Context, index uint64) (map[string]string, uint64, error) {
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: 10 * time.Second}).WithContext(ctx)
	pairs, meta, err := s.kv.List(s.opts.Prefix, q)
	if err != nil {
		return nil, index, fmt.Errorf("envconsultest: read %s: %w", s.opts.Prefix, err)
	}
	env := map[string]string{}
	for _, p := range pairs {
		key := strings.TrimPrefix(p.Key, s.opts.Prefix)
		if strings.TrimSpace(key) == "" {
			continue
		}
		env[strings.ToUpper(invalid.ReplaceAllString(key, "_"))] = string(p.Value)
	}
	return env, meta.LastIndex, nil
}

// run follows the prefix: a new environment replaces the child; the child
// exiting by itself ends the supervisor.
func (s *Supervisor) run(ctx context.Context, index uint64) {
	defer close(s.done)
	changes := make(chan map[string]string)
	go func() {
		for ctx.Err() == nil {
			env, next, err := s.read(ctx, index)
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(250 * time.Millisecond):
				}
				continue
			}
			if next < index { // the index went back (agent restarted): start over
				next = 0
			}
			index = next
			select {
			case changes <- env:
			case <-ctx.Done():
			}
		}
	}()
	for {
		s.mu.Lock()
		exitCh := s.child.ExitCh()
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case code, ok := <-exitCh:
			if !ok {
				continue // stopped for a restart: the new child's channel is next
			}
			s.mu.Lock()
			s.exited, s.exitCode = true, code
			s.mu.Unlock()
			s.cancel()
			return
		case env := <-changes:
			s.mu.Lock()
			if !maps.Equal(env, s.env) {
				// As envconsul's runner: stop the child (splay, kill
				// signal, kill timeout), then start one with the new
				// environment.
				s.child.Stop()
				if err := s.replace(env); err != nil {
					s.err = err
					s.mu.Unlock()
					s.cancel()
					return
				}
			}
			s.mu.Unlock()
		}
	}
}

// replace starts a child with env. Callers hold mu.
func (s *Supervisor) replace(env map[string]string) error {
	full := slices.Clone(s.opts.Env)
	for _, k := range slices.Sorted(maps.Keys(env)) {
		full = append(full, k+"="+env[k])
	}
	c, err := child.New(&child.NewInput{
		Stdout:      s.opts.Output,
		Stderr:      s.opts.Output,
		Command:     s.opts.Command,
		Args:        s.opts.Args,
		Env:         full,
		KillSignal:  s.opts.KillSignal,
		KillTimeout: s.opts.KillTimeout,
		Splay:       s.opts.Splay,
		Logger:      log.New(io.Discard, "", 0),
	})
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("envconsultest: start %s: %w", s.opts.Command, err)
	}
	s.child, s.env = c, env
	s.starts++
	return nil
}

// Starts returns how many children were started: 1 plus the restarts.
func (s *Supervisor) Starts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.starts
}

// Env returns the environment from KV the current child runs with.
func (s *Supervisor) Env() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.env)
}

// Exited reports whether the child exited by itself, ending the
// supervisor as it ends envconsul, and with what status.
func (s *Supervisor) Exited() (code int, exited bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitCode, s.exited
}

// Err is the error that ended the supervisor, if any.
func (s *Supervisor) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Stop stops following the prefix and stops the child at once (no
// splay), as envconsul does on SIGTERM.
func (s *Supervisor) Stop() {
	s.cancel()
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	s.child.StopImmediately()
}
