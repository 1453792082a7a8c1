package api

import (
	"context"
	"sync"
	"time"
)

// readTimeout bounds one shared store read.
const readTimeout = 10 * time.Second

// coalescer shares one store read among concurrent identical requests, without ever
// answering a request from a read that began before it arrived: a request joins the next
// read of its key that has not started yet, and a key has at most one read running and one
// waiting to start. Each answer is thus a fresh read of the store made during the request
// (nothing is kept once the read is delivered), while under load the store sees one read
// per key at a time instead of one per request.
type coalescer struct {
	mu   sync.Mutex
	keys map[string]*keyState
}

type keyState struct {
	running bool
	next    *flight // created by the first waiter, started when the running read ends
}

type flight struct {
	done chan struct{}
	val  any
	err  error
}

func (c *coalescer) do(ctx context.Context, key string, read func(context.Context) (any, error)) (any, error) {
	c.mu.Lock()
	if c.keys == nil {
		c.keys = map[string]*keyState{}
	}
	ks := c.keys[key]
	if ks == nil {
		ks = &keyState{}
		c.keys[key] = ks
	}
	f := ks.next
	if f == nil {
		f = &flight{done: make(chan struct{})}
		ks.next = f
		if !ks.running {
			c.start(key, ks, read)
		}
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// start runs ks.next; c.mu is held.
func (c *coalescer) start(key string, ks *keyState, read func(context.Context) (any, error)) {
	f := ks.next
	ks.next, ks.running = nil, true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		f.val, f.err = read(ctx)
		cancel()
		close(f.done)
		c.mu.Lock()
		defer c.mu.Unlock()
		ks.running = false
		if ks.next != nil {
			c.start(key, ks, read)
		} else {
			delete(c.keys, key)
		}
	}()
}
