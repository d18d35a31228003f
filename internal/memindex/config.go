package memindex

import (
	"errors"
	"fmt"
	"time"
)

// Config is the in-memory index's settings.
type Config struct {
	// Mode is on (point lookups are answered from memory where the index
	// holds what they ask) or off (every read goes to the database).
	Mode string `env:"MEMINDEX, default=off" live:"true"`
	// BudgetBytes bounds the memory the indexes hold; collections that do
	// not fit in what is left stay on the database.
	BudgetBytes int64 `env:"MEMINDEX_BUDGET_BYTES, default=2147483648" live:"true"`
	// PollInterval is how often the database is asked what changed: the
	// longest an index lags behind the database, plus the reload.
	PollInterval time.Duration `env:"MEMINDEX_POLL_INTERVAL, default=250ms"`
	// Lease is how long, after it last told the primary where its index
	// stands, an instance answers reads without a consistency token from
	// memory; writes wait at most about this long for an instance that
	// stopped telling (docs/INDEX.md, "Consistency: the lease").
	Lease time.Duration `env:"MEMINDEX_LEASE, default=2s"`
}

// Enabled reports whether the index is on.
func (c Config) Enabled() bool { return c.Mode == "on" }

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.Mode != "on" && c.Mode != "off" {
		errs = append(errs, fmt.Errorf("MEMINDEX must be on or off, got %q", c.Mode))
	}
	if c.BudgetBytes < 0 {
		errs = append(errs, fmt.Errorf("MEMINDEX_BUDGET_BYTES must not be negative, got %d", c.BudgetBytes))
	}
	if c.PollInterval < 10*time.Millisecond || c.PollInterval > time.Minute {
		errs = append(errs, fmt.Errorf("MEMINDEX_POLL_INTERVAL must be within [10ms, 1m], got %s", c.PollInterval))
	}
	if c.Lease < time.Second || c.Lease > 10*time.Minute {
		errs = append(errs, fmt.Errorf("MEMINDEX_LEASE must be within [1s, 10m], got %s", c.Lease))
	}
	return errors.Join(errs...)
}
