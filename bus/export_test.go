package bus

// Queued returns how many events wait in f's queue.
func Queued(f *Feed) int {
	f.q.mu.Lock()
	defer f.q.mu.Unlock()
	return len(f.q.events)
}
