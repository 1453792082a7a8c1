// Package interactions reads implicit-feedback data sets in the common
// `user,item,rating,timestamp` layout (MovieLens, Recommenders' CSVs), so the
// recommendation pipeline can be measured on public data as well as on the lake.
package interactions

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Interaction is one user's feedback on one item.
type Interaction struct {
	User, Item string
	Rating     float64   // 1 when the file has no rating column
	Time       time.Time // zero when the file has no timestamp column
}

// Options configure Read.
type Options struct {
	// Separator between fields: ',' when 0 (MovieLens' u.data is '\t').
	Separator rune
	// Header: the first line is a header. Without it, a first line is taken for one when
	// its rating or timestamp is not a number (a two-column file's header must be said).
	Header bool
}

// Read parses r: two to four fields per line (user, item, then optionally a rating and a
// timestamp: Unix seconds, integer or fractional, or RFC 3339). A malformed line fails the
// whole read with its line number: a measurement over silently dropped rows would be wrong.
func Read(r io.Reader, opts Options) ([]Interaction, error) {
	cr := csv.NewReader(r)
	if opts.Separator != 0 {
		cr.Comma = opts.Separator
	}
	cr.FieldsPerRecord = -1 // checked here, with a clearer message
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	var out []Interaction
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("interactions: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if first && opts.Header {
			continue
		}
		in, err := parse(rec)
		if err != nil && first && len(rec) > 2 && !numeric(rec[2:]) {
			continue // a header
		}
		if err != nil {
			return nil, fmt.Errorf("interactions: line %d: %w", line, err)
		}
		out = append(out, in)
	}
}

func parse(rec []string) (Interaction, error) {
	if len(rec) < 2 || len(rec) > 4 {
		return Interaction{}, fmt.Errorf("%d fields, want user, item[, rating[, timestamp]]", len(rec))
	}
	in := Interaction{User: strings.TrimSpace(rec[0]), Item: strings.TrimSpace(rec[1]), Rating: 1}
	if in.User == "" || in.Item == "" {
		return in, errors.New("empty user or item")
	}
	if len(rec) > 2 {
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[2]), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return in, fmt.Errorf("rating %q is not a finite number", rec[2])
		}
		in.Rating = v
	}
	if len(rec) > 3 {
		t, err := parseTime(strings.TrimSpace(rec[3]))
		if err != nil {
			return in, err
		}
		in.Time = t
	}
	return in, nil
}

func parseTime(s string) (time.Time, error) {
	if v, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(v) && !math.IsInf(v, 0) && math.Abs(v) < 1e11 {
		sec, frac := math.Modf(v)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("timestamp %q is neither Unix seconds nor RFC 3339", s)
}

// numeric reports whether any of fields is a number.
func numeric(fields []string) bool {
	for _, f := range fields {
		if _, err := strconv.ParseFloat(strings.TrimSpace(f), 64); err == nil {
			return true
		}
	}
	return false
}
