package sse

import (
	"fmt"
	"sync"
)

// registry counts the open streams per user on this node.
type registry struct {
	mu    sync.Mutex
	users map[string]int
	total int
}

func newRegistry() *registry { return &registry{users: map[string]int{}} }

// tryAdd counts a new stream for user unless that would pass perUser or total (0: no limit).
// It says which limit stopped it.
func (r *registry) tryAdd(user string, perUser, total int) (ok bool, limit string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if total > 0 && r.total >= total {
		return false, fmt.Sprintf("this node holds its limit of %d streams", total)
	}
	if perUser > 0 && r.users[user] >= perUser {
		return false, fmt.Sprintf("user has %d open streams on this node, the limit", perUser)
	}
	r.total++
	r.users[user]++
	return true, ""
}

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

func (r *registry) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	users := make(map[string]int, len(r.users))
	for u, n := range r.users {
		users[u] = n
	}
	return users
}
