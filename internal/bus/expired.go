package bus

// ExpiredRecords counts records a consumer lost to retention: the log start of a partition
// it owns moved past the next offset it had to read (an in-memory embedded broker trims by
// size, and a consumer can fall further behind than any retention). Kafka's reset then
// skips them; this makes the loss visible instead of silent.
type ExpiredRecords struct {
	marks map[expiredKey]int64 // the log start already counted, per topic partition
}

type expiredKey struct {
	topic     string
	partition int32
}

// NewExpiredRecords starts with nothing counted.
func NewExpiredRecords() *ExpiredRecords {
	return &ExpiredRecords{marks: map[expiredKey]int64{}}
}

// Observe takes a partition's next offset to read (negative: unknown) and its log start
// offset, and returns how many records were trimmed unread since the last observation.
func (e *ExpiredRecords) Observe(topic string, partition int32, next, logStart int64) int64 {
	if next < 0 || logStart <= next {
		return 0
	}
	k := expiredKey{topic, partition}
	from := max(next, e.marks[k])
	if logStart <= from {
		return 0
	}
	e.marks[k] = logStart
	return logStart - from
}

// Forget drops what was counted for a partition no longer owned.
func (e *ExpiredRecords) Forget(topic string, partition int32) {
	delete(e.marks, expiredKey{topic, partition})
}
