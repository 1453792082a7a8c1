// Package retry runs an operation until it succeeds or its context ends, backing off
// exponentially: what a role does while a server it needs (store, lake) is down, so the
// backlog waits in Kafka instead of being lost or skipped.
package retry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Backoff is the first wait and the longest; each failure doubles the wait up to Max.
type Backoff struct{ Initial, Max time.Duration }

// Stop wraps an error that retrying cannot mend (a fenced writer, an unreadable
// checkpoint): Until returns it at once.
func Stop(err error) error { return stopError{err} }

type stopError struct{ err error }

func (s stopError) Error() string { return s.err.Error() }
func (s stopError) Unwrap() error { return s.err }

// Until runs op until it returns nil, an error wrapped by Stop, or ctx ends. After each
// other failure it calls failed (if not nil) with the error and the coming wait. When ctx
// ends it returns ctx's error with the last failure.
func Until(ctx context.Context, b Backoff, op func() error, failed func(err error, wait time.Duration)) error {
	wait := b.Initial
	for {
		err := op()
		if err == nil {
			return nil
		}
		var stop stopError
		if errors.As(err, &stop) {
			return stop.err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		if failed != nil {
			failed(err, wait)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, b.Max)
	}
}
