// Package progress prints the live state of long work: count, rate, and ETA when the total
// is known. On a terminal it redraws one line; in logs it prints a line every few seconds.
package progress

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// Reporter samples a counter and writes progress lines.
type Reporter struct {
	Out      io.Writer
	Label    string
	Total    int64 // 0 when unknown
	Count    func() int64
	Interval time.Duration
	tty      bool
}

// New returns a reporter writing to stderr, redrawing in place when stderr is a terminal.
func New(label string, total int64, count func() int64) *Reporter {
	r := &Reporter{Out: os.Stderr, Label: label, Total: total, Count: count, Interval: 5 * time.Second}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		r.tty, r.Interval = true, time.Second
	}
	return r
}

// Run reports until ctx is done.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	start, last, lastAt := time.Now(), int64(0), time.Now()
	for {
		select {
		case <-ctx.Done():
			if r.tty {
				fmt.Fprintln(r.Out)
			}
			return
		case now := <-t.C:
			n := r.Count()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			r.print(n, rate, now.Sub(start))
		}
	}
}

func (r *Reporter) print(n int64, rate float64, elapsed time.Duration) {
	line := fmt.Sprintf("%s %s (%s/s) elapsed %s", r.Label, Int(n), Int(int64(rate)), elapsed.Round(time.Second))
	if r.Total > 0 {
		pct := 100 * float64(n) / float64(r.Total)
		eta := "?"
		if rate > 0 {
			eta = (time.Duration(float64(r.Total-n)/rate) * time.Second).Round(time.Second).String()
		}
		line += fmt.Sprintf(" %.1f%% ETA %s", pct, eta)
	}
	if r.tty {
		fmt.Fprintf(r.Out, "\r\033[K%s", line)
		return
	}
	fmt.Fprintln(r.Out, line)
}

// Int formats n with thousands separators.
func Int(n int64) string {
	s := fmt.Sprint(n)
	neg := n < 0
	if neg {
		s = s[1:]
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
