package lake

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Expired lists the partition directories holding only events older than cutoff: whole
// date=... directories, and hour=... directories of the day cutoff falls in.
func Expired(ctx context.Context, b Backend, cutoff time.Time) ([]string, error) {
	cutoff = cutoff.UTC()
	streams, err := b.ReadDir(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range streams {
		if !strings.HasPrefix(s, "stream=") {
			continue
		}
		dates, err := b.ReadDir(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, d := range dates {
			day, ok := ParseDate(d)
			if !ok {
				continue
			}
			switch {
			case !day.AddDate(0, 0, 1).After(cutoff):
				out = append(out, s+"/"+d)
			case !day.After(cutoff):
				hours, err := b.ReadDir(ctx, s+"/"+d)
				if err != nil {
					return nil, err
				}
				for _, h := range hours {
					n, err := strconv.Atoi(strings.TrimPrefix(h, "hour="))
					if err != nil || !strings.HasPrefix(h, "hour=") {
						continue
					}
					if !day.Add(time.Duration(n+1) * time.Hour).After(cutoff) {
						out = append(out, s+"/"+d+"/"+h)
					}
				}
			}
		}
	}
	return out, nil
}

// DeleteExpired removes what Expired lists and returns it.
func DeleteExpired(ctx context.Context, b Backend, cutoff time.Time) ([]string, error) {
	dirs, err := Expired(ctx, b, cutoff)
	if err != nil {
		return nil, err
	}
	for i, d := range dirs {
		if err := b.RemoveAll(ctx, d); err != nil {
			return dirs[:i], fmt.Errorf("lake retention: %w", err)
		}
	}
	return dirs, nil
}
