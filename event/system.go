package event

import (
	"time"

	"github.com/eventsd/eventsd/routing"
)

// The system events, published on context.system.<user>.<TYPE>. Timestamp is written in RFC 3339.

// ContextSummary is one context in a CONTEXTS_SNAPSHOT; its fields are snake_case.
type ContextSummary struct {
	ContextID    string    `json:"context_id"`
	Name         string    `json:"name"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	MessageCount int64     `json:"message_count"`
	TaskCount    int64     `json:"task_count"`
}

// ContextCreated (CONTEXT_CREATED) announces a new context.
type ContextCreated struct {
	Timestamp time.Time `json:"timestamp"`
	ContextID string    `json:"contextId"`
	Name      string    `json:"name"`
}

// ContextUpdated (CONTEXT_UPDATED) announces a change to a context.
type ContextUpdated struct {
	Timestamp time.Time `json:"timestamp"`
	ContextID string    `json:"contextId"`
	Name      string    `json:"name,omitempty"`
}

// ContextDeleted (CONTEXT_DELETED) announces that a context is gone.
type ContextDeleted struct {
	Timestamp time.Time `json:"timestamp"`
	ContextID string    `json:"contextId"`
}

// ContextsSnapshot (CONTEXTS_SNAPSHOT) lists a user's contexts.
type ContextsSnapshot struct {
	Timestamp time.Time        `json:"timestamp"`
	Contexts  []ContextSummary `json:"contexts"`
}

// Connected (CONNECTED) announces a new connection.
type Connected struct {
	Timestamp    time.Time `json:"timestamp"`
	ConnectionID string    `json:"connectionId"`
}

// SystemHeartbeat (HEARTBEAT) is a keep-alive event of the system channel (not the SSE heartbeat frame).
type SystemHeartbeat struct {
	Timestamp time.Time `json:"timestamp"`
}

// EventType implements Event.
func (ContextCreated) EventType() string { return "CONTEXT_CREATED" }

// Channel implements Event.
func (ContextCreated) Channel() routing.Channel { return routing.System }

// MarshalJSON writes the wire form, "type" first.
func (e ContextCreated) MarshalJSON() ([]byte, error) {
	type plain ContextCreated
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ContextUpdated) EventType() string { return "CONTEXT_UPDATED" }

// Channel implements Event.
func (ContextUpdated) Channel() routing.Channel { return routing.System }

// MarshalJSON writes the wire form, "type" first.
func (e ContextUpdated) MarshalJSON() ([]byte, error) {
	type plain ContextUpdated
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ContextDeleted) EventType() string { return "CONTEXT_DELETED" }

// Channel implements Event.
func (ContextDeleted) Channel() routing.Channel { return routing.System }

// MarshalJSON writes the wire form, "type" first.
func (e ContextDeleted) MarshalJSON() ([]byte, error) {
	type plain ContextDeleted
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ContextsSnapshot) EventType() string { return "CONTEXTS_SNAPSHOT" }

// Channel implements Event.
func (ContextsSnapshot) Channel() routing.Channel { return routing.System }

// MarshalJSON writes the wire form, "type" first.
func (e ContextsSnapshot) MarshalJSON() ([]byte, error) {
	type plain ContextsSnapshot
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (Connected) EventType() string { return "CONNECTED" }

// Channel implements Event.
func (Connected) Channel() routing.Channel { return routing.System }

// MarshalJSON writes the wire form, "type" first.
func (e Connected) MarshalJSON() ([]byte, error) {
	type plain Connected
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (SystemHeartbeat) EventType() string { return "HEARTBEAT" }

// Channel implements Event.
func (SystemHeartbeat) Channel() routing.Channel { return routing.System }

// MarshalJSON writes the wire form, "type" first.
func (e SystemHeartbeat) MarshalJSON() ([]byte, error) {
	type plain SystemHeartbeat
	return withType(e.EventType(), plain(e))
}

func init() {
	register(
		ContextCreated{},
		ContextUpdated{},
		ContextDeleted{},
		ContextsSnapshot{},
		Connected{},
		SystemHeartbeat{},
	)
}
