package event

import (
	"encoding/json"

	"github.com/eventsd/eventsd/routing"
)

// The AG-UI events, as the AG-UI protocol defines them (the npm package @ag-ui/core holds the
// authoritative schemas). Timestamp is milliseconds since the Unix epoch.

// AGUIExtras are the fields any AG-UI event may carry.
type AGUIExtras struct {
	RawEvent      json.RawMessage `json:"rawEvent,omitempty"`
	Metadata      json.RawMessage `json:"metadata,omitempty" kind:"object"`
	SubagentRunID string          `json:"subagentRunId,omitempty"`
}

// PatchOperation is one RFC 6902 JSON Patch operation.
type PatchOperation struct {
	Op    string          `json:"op" enum:"add,remove,replace,move,copy,test"`
	Path  string          `json:"path"`
	From  string          `json:"from,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
}

// RunStarted (RUN_STARTED) opens a run of an agent on a thread.
type RunStarted struct {
	Timestamp       int64           `json:"timestamp"`
	ThreadID        string          `json:"threadId"`
	RunID           string          `json:"runId"`
	ParentRunID     string          `json:"parentRunId,omitempty"`
	ProtocolVersion string          `json:"protocolVersion,omitempty"`
	Input           json.RawMessage `json:"input,omitempty" kind:"object"`
	AGUIExtras
}

// RunFinished (RUN_FINISHED) closes a run.
type RunFinished struct {
	Timestamp int64             `json:"timestamp"`
	ThreadID  string            `json:"threadId"`
	RunID     string            `json:"runId"`
	Result    json.RawMessage   `json:"result,omitempty"`
	Outcome   json.RawMessage   `json:"outcome,omitempty" kind:"object"`
	Usage     []json.RawMessage `json:"usage,omitempty" kind:"object"`
	AGUIExtras
}

// RunError (RUN_ERROR) ends a run with an error.
type RunError struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
	Code      string `json:"code,omitempty"`
	AGUIExtras
}

// StepStarted (STEP_STARTED) opens a step of a run.
type StepStarted struct {
	Timestamp int64  `json:"timestamp"`
	StepName  string `json:"stepName"`
	AGUIExtras
}

// StepFinished (STEP_FINISHED) closes a step.
type StepFinished struct {
	Timestamp int64  `json:"timestamp"`
	StepName  string `json:"stepName"`
	AGUIExtras
}

// TextMessageStart (TEXT_MESSAGE_START) opens a streamed text message.
type TextMessageStart struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Role      string `json:"role,omitempty" enum:"developer,system,assistant,user,tool"`
	Name      string `json:"name,omitempty"`
	AGUIExtras
}

// TextMessageContent (TEXT_MESSAGE_CONTENT) appends a fragment to a text message.
type TextMessageContent struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Delta     string `json:"delta"`
	AGUIExtras
}

// TextMessageEnd (TEXT_MESSAGE_END) closes a text message.
type TextMessageEnd struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	AGUIExtras
}

// TextMessageChunk (TEXT_MESSAGE_CHUNK) stands in for a text message start, content and end.
type TextMessageChunk struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId,omitempty"`
	Role      string `json:"role,omitempty" enum:"developer,system,assistant,user"`
	Delta     string `json:"delta,omitempty"`
	Name      string `json:"name,omitempty"`
	AGUIExtras
}

// ToolCallStart (TOOL_CALL_START) opens a tool call.
type ToolCallStart struct {
	Timestamp       int64  `json:"timestamp"`
	ToolCallID      string `json:"toolCallId"`
	ToolCallName    string `json:"toolCallName"`
	ParentMessageID string `json:"parentMessageId,omitempty"`
	AGUIExtras
}

// ToolCallArgs (TOOL_CALL_ARGS) appends a fragment of a tool call's arguments.
type ToolCallArgs struct {
	Timestamp  int64  `json:"timestamp"`
	ToolCallID string `json:"toolCallId"`
	Delta      string `json:"delta"`
	AGUIExtras
}

// ToolCallEnd (TOOL_CALL_END) closes a tool call.
type ToolCallEnd struct {
	Timestamp  int64  `json:"timestamp"`
	ToolCallID string `json:"toolCallId"`
	AGUIExtras
}

// ToolCallChunk (TOOL_CALL_CHUNK) stands in for a tool call start, args and end.
type ToolCallChunk struct {
	Timestamp       int64  `json:"timestamp"`
	ToolCallID      string `json:"toolCallId,omitempty"`
	ToolCallName    string `json:"toolCallName,omitempty"`
	ParentMessageID string `json:"parentMessageId,omitempty"`
	Delta           string `json:"delta,omitempty"`
	AGUIExtras
}

// ToolCallResult (TOOL_CALL_RESULT) carries the result of a tool call.
type ToolCallResult struct {
	Timestamp  int64           `json:"timestamp"`
	MessageID  string          `json:"messageId"`
	ToolCallID string          `json:"toolCallId"`
	Content    json.RawMessage `json:"content"`
	Role       string          `json:"role,omitempty" enum:"tool"`
	AGUIExtras
}

// StateSnapshot (STATE_SNAPSHOT) replaces the agent state.
type StateSnapshot struct {
	Timestamp int64           `json:"timestamp"`
	Snapshot  json.RawMessage `json:"snapshot"`
	AGUIExtras
}

// StateDelta (STATE_DELTA) changes the agent state by RFC 6902 operations.
type StateDelta struct {
	Timestamp int64            `json:"timestamp"`
	Delta     []PatchOperation `json:"delta"`
	AGUIExtras
}

// MessagesSnapshot (MESSAGES_SNAPSHOT) replaces the conversation.
type MessagesSnapshot struct {
	Timestamp int64             `json:"timestamp"`
	Messages  []json.RawMessage `json:"messages" kind:"object"`
	AGUIExtras
}

// ActivitySnapshot (ACTIVITY_SNAPSHOT) replaces an activity message.
type ActivitySnapshot struct {
	Timestamp    int64           `json:"timestamp"`
	MessageID    string          `json:"messageId"`
	ActivityType string          `json:"activityType"`
	Content      json.RawMessage `json:"content" kind:"object"`
	Replace      *bool           `json:"replace,omitempty"`
	AGUIExtras
}

// ActivityDelta (ACTIVITY_DELTA) changes an activity message by RFC 6902 operations.
type ActivityDelta struct {
	Timestamp    int64            `json:"timestamp"`
	MessageID    string           `json:"messageId"`
	ActivityType string           `json:"activityType"`
	Patch        []PatchOperation `json:"patch"`
	AGUIExtras
}

// ReasoningStart (REASONING_START) opens a reasoning phase.
type ReasoningStart struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	AGUIExtras
}

// ReasoningMessageStart (REASONING_MESSAGE_START) opens a reasoning message.
type ReasoningMessageStart struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Role      string `json:"role" enum:"reasoning"`
	AGUIExtras
}

// ReasoningMessageContent (REASONING_MESSAGE_CONTENT) appends to a reasoning message.
type ReasoningMessageContent struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Delta     string `json:"delta"`
	AGUIExtras
}

// ReasoningMessageEnd (REASONING_MESSAGE_END) closes a reasoning message.
type ReasoningMessageEnd struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	AGUIExtras
}

// ReasoningMessageChunk (REASONING_MESSAGE_CHUNK) stands in for a reasoning message start, content and end.
type ReasoningMessageChunk struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId,omitempty"`
	Delta     string `json:"delta,omitempty"`
	AGUIExtras
}

// ReasoningEnd (REASONING_END) closes a reasoning phase.
type ReasoningEnd struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	AGUIExtras
}

// ReasoningEncryptedValue (REASONING_ENCRYPTED_VALUE) carries encrypted reasoning for a tool call or message.
type ReasoningEncryptedValue struct {
	Timestamp      int64  `json:"timestamp"`
	Subtype        string `json:"subtype" enum:"tool-call,message"`
	EntityID       string `json:"entityId"`
	EncryptedValue string `json:"encryptedValue"`
	AGUIExtras
}

// RawEvent (RAW) passes through an event of another system.
type RawEvent struct {
	Timestamp int64           `json:"timestamp"`
	Event     json.RawMessage `json:"event"`
	Source    string          `json:"source,omitempty"`
	AGUIExtras
}

// Custom (CUSTOM) is an application-defined event.
type Custom struct {
	Timestamp int64           `json:"timestamp"`
	Name      string          `json:"name"`
	Value     json.RawMessage `json:"value"`
	AGUIExtras
}

// EventType implements Event.
func (RunStarted) EventType() string { return "RUN_STARTED" }

// Channel implements Event.
func (RunStarted) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e RunStarted) MarshalJSON() ([]byte, error) {
	type plain RunStarted
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (RunFinished) EventType() string { return "RUN_FINISHED" }

// Channel implements Event.
func (RunFinished) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e RunFinished) MarshalJSON() ([]byte, error) {
	type plain RunFinished
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (RunError) EventType() string { return "RUN_ERROR" }

// Channel implements Event.
func (RunError) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e RunError) MarshalJSON() ([]byte, error) {
	type plain RunError
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (StepStarted) EventType() string { return "STEP_STARTED" }

// Channel implements Event.
func (StepStarted) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e StepStarted) MarshalJSON() ([]byte, error) {
	type plain StepStarted
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (StepFinished) EventType() string { return "STEP_FINISHED" }

// Channel implements Event.
func (StepFinished) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e StepFinished) MarshalJSON() ([]byte, error) {
	type plain StepFinished
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (TextMessageStart) EventType() string { return "TEXT_MESSAGE_START" }

// Channel implements Event.
func (TextMessageStart) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e TextMessageStart) MarshalJSON() ([]byte, error) {
	type plain TextMessageStart
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (TextMessageContent) EventType() string { return "TEXT_MESSAGE_CONTENT" }

// Channel implements Event.
func (TextMessageContent) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e TextMessageContent) MarshalJSON() ([]byte, error) {
	type plain TextMessageContent
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (TextMessageEnd) EventType() string { return "TEXT_MESSAGE_END" }

// Channel implements Event.
func (TextMessageEnd) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e TextMessageEnd) MarshalJSON() ([]byte, error) {
	type plain TextMessageEnd
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (TextMessageChunk) EventType() string { return "TEXT_MESSAGE_CHUNK" }

// Channel implements Event.
func (TextMessageChunk) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e TextMessageChunk) MarshalJSON() ([]byte, error) {
	type plain TextMessageChunk
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ToolCallStart) EventType() string { return "TOOL_CALL_START" }

// Channel implements Event.
func (ToolCallStart) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ToolCallStart) MarshalJSON() ([]byte, error) {
	type plain ToolCallStart
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ToolCallArgs) EventType() string { return "TOOL_CALL_ARGS" }

// Channel implements Event.
func (ToolCallArgs) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ToolCallArgs) MarshalJSON() ([]byte, error) {
	type plain ToolCallArgs
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ToolCallEnd) EventType() string { return "TOOL_CALL_END" }

// Channel implements Event.
func (ToolCallEnd) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ToolCallEnd) MarshalJSON() ([]byte, error) {
	type plain ToolCallEnd
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ToolCallChunk) EventType() string { return "TOOL_CALL_CHUNK" }

// Channel implements Event.
func (ToolCallChunk) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ToolCallChunk) MarshalJSON() ([]byte, error) {
	type plain ToolCallChunk
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ToolCallResult) EventType() string { return "TOOL_CALL_RESULT" }

// Channel implements Event.
func (ToolCallResult) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ToolCallResult) MarshalJSON() ([]byte, error) {
	type plain ToolCallResult
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (StateSnapshot) EventType() string { return "STATE_SNAPSHOT" }

// Channel implements Event.
func (StateSnapshot) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e StateSnapshot) MarshalJSON() ([]byte, error) {
	type plain StateSnapshot
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (StateDelta) EventType() string { return "STATE_DELTA" }

// Channel implements Event.
func (StateDelta) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e StateDelta) MarshalJSON() ([]byte, error) {
	type plain StateDelta
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (MessagesSnapshot) EventType() string { return "MESSAGES_SNAPSHOT" }

// Channel implements Event.
func (MessagesSnapshot) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e MessagesSnapshot) MarshalJSON() ([]byte, error) {
	type plain MessagesSnapshot
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ActivitySnapshot) EventType() string { return "ACTIVITY_SNAPSHOT" }

// Channel implements Event.
func (ActivitySnapshot) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ActivitySnapshot) MarshalJSON() ([]byte, error) {
	type plain ActivitySnapshot
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ActivityDelta) EventType() string { return "ACTIVITY_DELTA" }

// Channel implements Event.
func (ActivityDelta) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ActivityDelta) MarshalJSON() ([]byte, error) {
	type plain ActivityDelta
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ReasoningStart) EventType() string { return "REASONING_START" }

// Channel implements Event.
func (ReasoningStart) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ReasoningStart) MarshalJSON() ([]byte, error) {
	type plain ReasoningStart
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ReasoningMessageStart) EventType() string { return "REASONING_MESSAGE_START" }

// Channel implements Event.
func (ReasoningMessageStart) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ReasoningMessageStart) MarshalJSON() ([]byte, error) {
	type plain ReasoningMessageStart
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ReasoningMessageContent) EventType() string { return "REASONING_MESSAGE_CONTENT" }

// Channel implements Event.
func (ReasoningMessageContent) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ReasoningMessageContent) MarshalJSON() ([]byte, error) {
	type plain ReasoningMessageContent
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ReasoningMessageEnd) EventType() string { return "REASONING_MESSAGE_END" }

// Channel implements Event.
func (ReasoningMessageEnd) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ReasoningMessageEnd) MarshalJSON() ([]byte, error) {
	type plain ReasoningMessageEnd
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ReasoningMessageChunk) EventType() string { return "REASONING_MESSAGE_CHUNK" }

// Channel implements Event.
func (ReasoningMessageChunk) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ReasoningMessageChunk) MarshalJSON() ([]byte, error) {
	type plain ReasoningMessageChunk
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ReasoningEnd) EventType() string { return "REASONING_END" }

// Channel implements Event.
func (ReasoningEnd) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ReasoningEnd) MarshalJSON() ([]byte, error) {
	type plain ReasoningEnd
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (ReasoningEncryptedValue) EventType() string { return "REASONING_ENCRYPTED_VALUE" }

// Channel implements Event.
func (ReasoningEncryptedValue) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e ReasoningEncryptedValue) MarshalJSON() ([]byte, error) {
	type plain ReasoningEncryptedValue
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (RawEvent) EventType() string { return "RAW" }

// Channel implements Event.
func (RawEvent) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e RawEvent) MarshalJSON() ([]byte, error) {
	type plain RawEvent
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (Custom) EventType() string { return "CUSTOM" }

// Channel implements Event.
func (Custom) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e Custom) MarshalJSON() ([]byte, error) {
	type plain Custom
	return withType(e.EventType(), plain(e))
}

func init() {
	register(
		RunStarted{},
		RunFinished{},
		RunError{},
		StepStarted{},
		StepFinished{},
		TextMessageStart{},
		TextMessageContent{},
		TextMessageEnd{},
		TextMessageChunk{},
		ToolCallStart{},
		ToolCallArgs{},
		ToolCallEnd{},
		ToolCallChunk{},
		ToolCallResult{},
		StateSnapshot{},
		StateDelta{},
		MessagesSnapshot{},
		ActivitySnapshot{},
		ActivityDelta{},
		ReasoningStart{},
		ReasoningMessageStart{},
		ReasoningMessageContent{},
		ReasoningMessageEnd{},
		ReasoningMessageChunk{},
		ReasoningEnd{},
		ReasoningEncryptedValue{},
		RawEvent{},
		Custom{},
	)
}
