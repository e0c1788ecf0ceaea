package event

import (
	"encoding/json"
	"time"

	"github.com/eventsd/eventsd/routing"
)

// The A2A events. Timestamp is written in RFC 3339.

// Artifact is an A2A artifact.
type Artifact struct {
	ArtifactID  string            `json:"artifactId"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Parts       []json.RawMessage `json:"parts" kind:"object"`
	Metadata    json.RawMessage   `json:"metadata,omitempty" kind:"object"`
}

// TaskSubmitted (TASK_SUBMITTED) announces a task given to an agent.
type TaskSubmitted struct {
	Timestamp time.Time       `json:"timestamp"`
	TaskID    string          `json:"taskId"`
	ContextID string          `json:"contextId"`
	AgentName string          `json:"agentName"`
	Input     json.RawMessage `json:"input,omitempty"`
}

// TaskStatusUpdate (TASK_STATUS_UPDATE) reports a task's new state.
type TaskStatusUpdate struct {
	Timestamp time.Time       `json:"timestamp"`
	TaskID    string          `json:"taskId"`
	ContextID string          `json:"contextId"`
	State     string          `json:"state" enum:"TASK_STATE_SUBMITTED,TASK_STATE_WORKING,TASK_STATE_INPUT_REQUIRED,TASK_STATE_COMPLETED,TASK_STATE_CANCELED,TASK_STATE_FAILED,TASK_STATE_REJECTED,TASK_STATE_AUTH_REQUIRED"`
	Message   json.RawMessage `json:"message,omitempty"`
}

// ArtifactCreated (ARTIFACT_CREATED) announces an artifact of a task.
type ArtifactCreated struct {
	Timestamp time.Time `json:"timestamp"`
	TaskID    string    `json:"taskId"`
	ContextID string    `json:"contextId"`
	Artifact  Artifact  `json:"artifact"`
}

// ArtifactUpdated (ARTIFACT_UPDATED) streams a change to an artifact.
type ArtifactUpdated struct {
	Timestamp  time.Time       `json:"timestamp"`
	TaskID     string          `json:"taskId"`
	ContextID  string          `json:"contextId"`
	ArtifactID string          `json:"artifactId"`
	Append     bool            `json:"append"`
	LastChunk  bool            `json:"lastChunk"`
	Content    json.RawMessage `json:"content,omitempty"`
}

// AgentMessage (AGENT_MESSAGE) carries a message from an agent: its text as Content, and,
// when it has more than text, its A2A 1.0 parts (Content is then what a reader of text shows).
type AgentMessage struct {
	Timestamp time.Time         `json:"timestamp"`
	TaskID    string            `json:"taskId"`
	ContextID string            `json:"contextId"`
	MessageID string            `json:"messageId"`
	Content   string            `json:"content"`
	Parts     []json.RawMessage `json:"parts,omitempty" kind:"object"`
}

// InputRequired (INPUT_REQUIRED) asks the user for input.
type InputRequired struct {
	Timestamp time.Time `json:"timestamp"`
	TaskID    string    `json:"taskId"`
	ContextID string    `json:"contextId"`
	Prompt    string    `json:"prompt"`
}

// AuthRequired (AUTH_REQUIRED) asks the user to authenticate.
type AuthRequired struct {
	Timestamp time.Time `json:"timestamp"`
	TaskID    string    `json:"taskId"`
	ContextID string    `json:"contextId"`
	AuthURL   string    `json:"authUrl"`
}

// JSONRPCResponse (JSON_RPC_RESPONSE) carries a JSON-RPC result.
type JSONRPCResponse struct {
	Timestamp time.Time       `json:"timestamp"`
	ID        json.RawMessage `json:"id" kind:"id"`
	Result    json.RawMessage `json:"result"`
}

// JSONRPCError (JSON_RPC_ERROR) carries a JSON-RPC error.
type JSONRPCError struct {
	Timestamp time.Time       `json:"timestamp"`
	ID        json.RawMessage `json:"id" kind:"id"`
	Code      int64           `json:"code"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data,omitempty"`
}

// EventType implements Event.
func (TaskSubmitted) EventType() string { return "TASK_SUBMITTED" }

// Channel implements Event.
func (TaskSubmitted) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e TaskSubmitted) MarshalJSON() ([]byte, error) {
	type plain TaskSubmitted
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (TaskStatusUpdate) EventType() string { return "TASK_STATUS_UPDATE" }

// Channel implements Event.
func (TaskStatusUpdate) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e TaskStatusUpdate) MarshalJSON() ([]byte, error) {
	type plain TaskStatusUpdate
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ArtifactCreated) EventType() string { return "ARTIFACT_CREATED" }

// Channel implements Event.
func (ArtifactCreated) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e ArtifactCreated) MarshalJSON() ([]byte, error) {
	type plain ArtifactCreated
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ArtifactUpdated) EventType() string { return "ARTIFACT_UPDATED" }

// Channel implements Event.
func (ArtifactUpdated) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e ArtifactUpdated) MarshalJSON() ([]byte, error) {
	type plain ArtifactUpdated
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (AgentMessage) EventType() string { return "AGENT_MESSAGE" }

// Channel implements Event.
func (AgentMessage) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e AgentMessage) MarshalJSON() ([]byte, error) {
	type plain AgentMessage
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (InputRequired) EventType() string { return "INPUT_REQUIRED" }

// Channel implements Event.
func (InputRequired) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e InputRequired) MarshalJSON() ([]byte, error) {
	type plain InputRequired
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (AuthRequired) EventType() string { return "AUTH_REQUIRED" }

// Channel implements Event.
func (AuthRequired) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e AuthRequired) MarshalJSON() ([]byte, error) {
	type plain AuthRequired
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (JSONRPCResponse) EventType() string { return "JSON_RPC_RESPONSE" }

// Channel implements Event.
func (JSONRPCResponse) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e JSONRPCResponse) MarshalJSON() ([]byte, error) {
	type plain JSONRPCResponse
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (JSONRPCError) EventType() string { return "JSON_RPC_ERROR" }

// Channel implements Event.
func (JSONRPCError) Channel() routing.Channel { return routing.A2A }

// MarshalJSON writes the wire form, "type" first.
func (e JSONRPCError) MarshalJSON() ([]byte, error) {
	type plain JSONRPCError
	return withType(e.EventType(), plain(e))
}

func init() {
	register(
		TaskSubmitted{},
		TaskStatusUpdate{},
		ArtifactCreated{},
		ArtifactUpdated{},
		AgentMessage{},
		InputRequired{},
		AuthRequired{},
		JSONRPCResponse{},
		JSONRPCError{},
	)
}
