package kafka

// SetBeforeCommit makes r call fn between producing a batch and committing
// it; an error stops the relay there, as a crash would.
func SetBeforeCommit(r *Relay, fn func() error) { r.beforeCommit = fn }

// SetBeforeApply makes p call fn before applying each batch; an error
// stops the consumer there, as a crash would.
func SetBeforeApply(p *Positions, fn func(n int) error) { p.beforeApply = fn }
