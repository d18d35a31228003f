// Command envconsul is a stand-in for HashiCorp's envconsul where its
// release download cannot be reached (make standins builds it; the image's
// default is still the real release). It reads the same configuration file
// (-config, HCL) and does what docker-compose.yml relies on: the keys under
// prefix.path become environment variables (no_prefix, upcase, sanitize),
// on top of the container's environment (pristine = false), and when one
// changes the command is stopped (exec.splay, exec.kill_signal,
// exec.kill_timeout) and started again. The supervision is consul-template's
// child package, the one envconsul itself uses, through
// internal/consul/envconsultest. It exits with the command's status, and on
// SIGTERM or SIGINT passes kill_signal on and exits when the command has.
//
// What it does not do: any other flag or configuration block (vault,
// secret, once, reload_signal, ...), and upcase = false or no_prefix =
// false (it refuses them instead of behaving differently).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/hcl"

	"github.com/geosearch/search/internal/consul/envconsultest"
)

// config is the part of envconsul's configuration file the stand-in reads.
type config struct {
	Consul struct {
		Address string `hcl:"address"`
		Retry   struct {
			Backoff    string `hcl:"backoff"`
			MaxBackoff string `hcl:"max_backoff"`
		} `hcl:"retry"`
	} `hcl:"consul"`
	// One prefix block (HCL v1 splits a block decoded into a slice of
	// structs at its comments).
	Prefix struct {
		Path     string `hcl:"path"`
		NoPrefix bool   `hcl:"no_prefix"`
	} `hcl:"prefix"`
	Upcase     bool   `hcl:"upcase"`
	Sanitize   bool   `hcl:"sanitize"`
	Pristine   bool   `hcl:"pristine"`
	KillSignal string `hcl:"kill_signal"`
	Exec       struct {
		Command     []string `hcl:"command"`
		Splay       string   `hcl:"splay"`
		KillSignal  string   `hcl:"kill_signal"`
		KillTimeout string   `hcl:"kill_timeout"`
	} `hcl:"exec"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	code, err := run(ctx, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "envconsul (stand-in):", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("envconsul", flag.ContinueOnError)
	path := fs.String("config", "", "configuration file (HCL)")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	if *path == "" {
		return 0, errors.New("-config is required")
	}
	text, err := os.ReadFile(*path)
	if err != nil {
		return 0, err
	}
	var c config
	if err := hcl.Unmarshal(text, &c); err != nil {
		return 0, fmt.Errorf("%s: %w", *path, err)
	}
	opts, err := options(c)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", *path, err)
	}
	apiConfig := api.DefaultConfig() // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN
	if c.Consul.Address != "" {
		apiConfig.Address = c.Consul.Address
	}
	client, err := api.NewClient(apiConfig)
	if err != nil {
		return 0, err
	}
	backoff, maxBackoff := duration(c.Consul.Retry.Backoff, 250*time.Millisecond), duration(c.Consul.Retry.MaxBackoff, 30*time.Second)
	var s *envconsultest.Supervisor
	// Consul being away is no reason to give up (retry.attempts = 0).
	for {
		if s, err = envconsultest.Start(client, opts); err == nil {
			break
		}
		fmt.Fprintln(os.Stderr, "envconsul (stand-in): waiting for Consul:", err)
		select {
		case <-ctx.Done():
			return 0, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// As envconsul: the signal goes on to the command at once.
			s.Stop()
			code, _ := s.Exited()
			return code, nil
		case <-tick.C:
			if err := s.Err(); err != nil {
				return 0, err
			}
			if code, exited := s.Exited(); exited {
				return code, nil
			}
		}
	}
}

// options turns the configuration into the supervisor's options, refusing
// what the stand-in does not implement.
func options(c config) (envconsultest.Options, error) {
	var o envconsultest.Options
	if c.Prefix.Path == "" {
		return o, errors.New("a prefix block with a path is required")
	}
	if !c.Prefix.NoPrefix || !c.Upcase || !c.Sanitize {
		return o, errors.New("only no_prefix = true, upcase = true and sanitize = true are supported")
	}
	if len(c.Exec.Command) == 0 {
		return o, errors.New("exec.command is required")
	}
	killSignal, err := signalNamed(c.Exec.KillSignal)
	if err != nil {
		return o, err
	}
	if c.KillSignal != "" && c.KillSignal != "SIGTERM" && c.KillSignal != "SIGINT" {
		return o, fmt.Errorf("kill_signal %s: only SIGTERM or SIGINT are supported", c.KillSignal)
	}
	o = envconsultest.Options{
		Prefix:      c.Prefix.Path,
		Command:     c.Exec.Command[0],
		Args:        c.Exec.Command[1:],
		KillSignal:  killSignal,
		KillTimeout: duration(c.Exec.KillTimeout, 30*time.Second),
		Splay:       duration(c.Exec.Splay, 0),
		Output:      os.Stdout,
	}
	if !c.Pristine {
		o.Env = os.Environ()
	}
	return o, nil
}

func signalNamed(name string) (os.Signal, error) {
	switch name {
	case "", "SIGTERM":
		return syscall.SIGTERM, nil
	case "SIGINT":
		return syscall.SIGINT, nil
	case "SIGQUIT":
		return syscall.SIGQUIT, nil
	case "SIGKILL":
		return syscall.SIGKILL, nil
	}
	return nil, fmt.Errorf("exec.kill_signal %s is not supported", name)
}

func duration(s string, fallback time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return fallback
}
