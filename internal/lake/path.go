package lake

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// PartitionDir is where events of a stream with the given event time go:
// stream=<name>/date=YYYY-MM-DD/hour=HH (UTC), the Hive layout Spark and DuckDB discover.
func PartitionDir(stream string, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("stream=%s/date=%s/hour=%02d", stream, t.Format("2006-01-02"), t.Hour())
}

// FileRange is what a lake file's name says: the Kafka partition and the first and last
// offsets of the records in it. A file holds every record of that partition, in that
// offset range, whose event time falls in the file's directory.
type FileRange struct {
	Topic     string // logical topic name
	Partition int32
	First     int64
	Last      int64
}

// offsetDigits pads offsets so names sort in offset order.
const offsetDigits = 20

// FileName is <topic>-p<partition>-<first>-<last>.parquet.
func (r FileRange) FileName() string {
	return fmt.Sprintf("%s-p%d-%0*d-%0*d.parquet", r.Topic, r.Partition, offsetDigits, r.First, offsetDigits, r.Last)
}

// ParseFileName reads a name written by FileName; ok is false for any other file.
func ParseFileName(name string) (r FileRange, ok bool) {
	name = path.Base(name)
	rest, found := strings.CutSuffix(name, ".parquet")
	if !found {
		return r, false
	}
	// The topic may itself contain '-': parse from the right.
	parts := strings.Split(rest, "-")
	if len(parts) < 4 {
		return r, false
	}
	n := len(parts)
	first, err1 := strconv.ParseInt(parts[n-2], 10, 64)
	last, err2 := strconv.ParseInt(parts[n-1], 10, 64)
	p, err3 := strconv.ParseInt(strings.TrimPrefix(parts[n-3], "p"), 10, 32)
	if err1 != nil || err2 != nil || err3 != nil || !strings.HasPrefix(parts[n-3], "p") || first > last {
		return r, false
	}
	return FileRange{Topic: strings.Join(parts[:n-3], "-"), Partition: int32(p), First: first, Last: last}, true
}

// ParseDate reads the date of a date=YYYY-MM-DD path element.
func ParseDate(elem string) (time.Time, bool) {
	s, ok := strings.CutPrefix(elem, "date=")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse("2006-01-02", s)
	return t, err == nil
}
