package interactions

import (
	"strings"
	"testing"
	"time"
)

func TestReadLayouts(t *testing.T) {
	for _, c := range []struct {
		name, in string
		opts     Options
		want     []Interaction
	}{
		{"MovieLens u.data (tabs, no header)", "196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n", Options{Separator: '\t'},
			[]Interaction{{"196", "242", 3, time.Unix(881250949, 0).UTC()}, {"186", "302", 3.5, time.Unix(891717742, 0).UTC()}}},
		{"header, RFC 3339 and fractional seconds", "userID,itemID,rating,timestamp\nu1,p1,1,2026-12-01T10:00:00Z\nu2,p2,2,1764583200.5\n", Options{},
			[]Interaction{{"u1", "p1", 1, time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}, {"u2", "p2", 2, time.Unix(1764583200, 5e8).UTC()}}},
		{"user and item only, header said", "user;item\nu1;p1\n", Options{Separator: ';', Header: true},
			[]Interaction{{"u1", "p1", 1, time.Time{}}}},
		{"rating without time", "u1,p1,4\n", Options{}, []Interaction{{"u1", "p1", 4, time.Time{}}}},
	} {
		got, err := Read(strings.NewReader(c.in), c.opts)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i].User != c.want[i].User || got[i].Item != c.want[i].Item || got[i].Rating != c.want[i].Rating || !got[i].Time.Equal(c.want[i].Time) {
				t.Errorf("%s: row %d %+v, want %+v", c.name, i, got[i], c.want[i])
			}
		}
	}
}

// A malformed line fails the read and names its line; a header is only ever the first line.
func TestReadNamesTheBadLine(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"rating", "u,i,1,5\nu,i,x,5\n", "line 2: rating \"x\" is not a finite number"},
		{"timestamp", "user,item,rating,ts\nu,i,1,5\nu,i,1,yesterday\n", "line 3: timestamp \"yesterday\""},
		{"fields", "u,i,1,5\nu\n", "line 2: 1 fields"},
		{"empty item", "u,i,1\n\nu,,1\n", "line 3: empty user or item"},
		{"a header later on", "u,i,1,5\nuser,item,rating,ts\n", "line 2: rating \"rating\""},
		{"infinite rating", "u,i,inf\n", "line 1: rating \"inf\""},
	} {
		_, err := Read(strings.NewReader(c.in), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}
