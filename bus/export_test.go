package bus

// Queued returns how many events wait in f's queue.
func Queued(f *Feed) int { return f.sub.Len() }
