package retry

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Failures are retried with doubling waits capped at Max until op succeeds.
func TestUntilBacksOffToSuccess(t *testing.T) {
	var waits []time.Duration
	calls := 0
	err := Until(context.Background(), Backoff{time.Millisecond, 4 * time.Millisecond}, func() error {
		calls++
		if calls < 5 {
			return errors.New("down")
		}
		return nil
	}, func(_ error, wait time.Duration) { waits = append(waits, wait) })
	if err != nil || calls != 5 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	want := []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond, 4 * time.Millisecond}
	if len(waits) != len(want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
}

// When the context ends, Until returns its error wrapped with the last failure.
func TestUntilStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	down := errors.New("still down")
	calls := 0
	err := Until(ctx, Backoff{time.Millisecond, time.Millisecond}, func() error {
		calls++
		if calls == 3 {
			cancel()
		}
		return down
	}, nil)
	if !errors.Is(err, context.Canceled) || calls != 3 {
		t.Fatalf("err %v after %d calls, want context.Canceled after 3", err, calls)
	}
}

// An error wrapped by Stop ends the retries at once, unwrapped.
func TestStopEndsRetries(t *testing.T) {
	permanent := errors.New("fenced")
	calls := 0
	err := Until(context.Background(), Backoff{time.Millisecond, time.Millisecond}, func() error {
		calls++
		if calls == 2 {
			return Stop(permanent)
		}
		return errors.New("down")
	}, nil)
	if err != permanent || calls != 2 {
		t.Fatalf("err %v after %d calls, want the stop error after 2", err, calls)
	}
}
