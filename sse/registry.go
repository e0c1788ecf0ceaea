package sse

import "sync"

// registry counts the open streams per user on this node.
type registry struct {
	mu    sync.Mutex
	users map[string]int
	total int
}

func newRegistry() *registry { return &registry{users: map[string]int{}} }

func (r *registry) add(user string, delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total += delta
	if n := r.users[user] + delta; n > 0 {
		r.users[user] = n
	} else {
		delete(r.users, user)
	}
}

func (r *registry) count(user string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.users[user]
}

func (r *registry) snapshot() (int, map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	users := make(map[string]int, len(r.users))
	for u, n := range r.users {
		users[u] = n
	}
	return r.total, users
}
