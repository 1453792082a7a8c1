package bus

// Trimmed is how many records a fetch skipped because retention removed them before they
// were read: next is the consumer's next offset (negative: unknown), first the fetch's first
// record and logStart the partition's log start offset in that fetch. The records from next
// up to the log start are gone; a gap above the log start (an aborted transaction's records,
// filtered under read_committed) is not a loss. Kafka's reset skips them; counting them makes
// the loss visible instead of silent.
func Trimmed(next, first, logStart int64) int64 {
	if next < 0 || logStart <= next {
		return 0
	}
	return min(first, logStart) - next
}
