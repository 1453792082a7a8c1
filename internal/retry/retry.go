// Package retry runs an operation until it succeeds or its context ends, backing off
// exponentially: what a role does while a server it needs (store, lake) is down, so the
// backlog waits in Kafka instead of being lost or skipped.
package retry

import (
	"context"
	"fmt"
	"time"
)

// Backoff is the first wait and the longest; each failure doubles the wait up to Max.
type Backoff struct{ Initial, Max time.Duration }

// Until runs op until it returns nil or ctx ends. After each failure it calls failed (if
// not nil) with the error and the coming wait. When ctx ends it returns ctx's error with the
// last failure.
func Until(ctx context.Context, b Backoff, op func() error, failed func(err error, wait time.Duration)) error {
	wait := b.Initial
	for {
		err := op()
		if err == nil {
			return nil
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
