package event

import (
	"encoding/json"

	"github.com/eventsd/eventsd/routing"
)

// The AG-UI events, as @ag-ui/core 1.0.0 defines them: one type per member of its EventType
// enum, with the fields of its schemas (TestAGUITypesMatchCore and TestAGUIFieldsMatchCore hold
// the two together). Timestamp is milliseconds since the Unix epoch. Optional fields are left out
// when empty and are never null, as the protocol wants; a Go producer that means JSON null in a
// field of any JSON value (a custom value, a state snapshot) writes json.RawMessage("null").

// AGUIExtras are the fields every AG-UI event may carry.
type AGUIExtras struct {
	RawEvent json.RawMessage `json:"rawEvent,omitempty" kind:"value"`
	Metadata json.RawMessage `json:"metadata,omitempty" kind:"object"`
}

// Attributable are AGUIExtras and SubagentRunID, the subagent run whose work an event is part of.
// Every AG-UI event embeds them but the run-scoped ones (RUN_STARTED, RUN_FINISHED, RUN_ERROR,
// MESSAGES_SNAPSHOT), which belong to no one subagent, and the SUBAGENT_* events, which carry
// their subagent run as a field of their own.
type Attributable struct {
	AGUIExtras
	SubagentRunID string `json:"subagentRunId,omitempty"`
}

// PatchOperation is one RFC 6902 JSON Patch operation. Path and From are JSON Pointers
// (RFC 6901); From belongs to move and copy, Value to add, replace and test (nil is written as
// null there).
type PatchOperation struct {
	Op    string          `json:"op" enum:"add,remove,replace,move,copy,test"`
	Path  string          `json:"path" kind:"pointer"`
	From  string          `json:"from,omitempty" kind:"pointer" required:"op=move,copy"`
	Value json.RawMessage `json:"value,omitempty" required:"op=add,replace,test"`
}

// MarshalJSON writes the fields of the operation's op, and only those: an empty From (the whole
// document) is still written for copy, and a nil Value as null.
func (p PatchOperation) MarshalJSON() ([]byte, error) {
	w := struct {
		Op    string           `json:"op"`
		Path  string           `json:"path"`
		From  *string          `json:"from,omitempty"`
		Value *json.RawMessage `json:"value,omitempty"`
	}{Op: p.Op, Path: p.Path}
	switch p.Op {
	case "move", "copy":
		w.From = &p.From
	case "add", "replace", "test":
		v := p.Value
		if v == nil {
			v = json.RawMessage("null")
		}
		w.Value = &v
	}
	return json.Marshal(w)
}

// TokenUsage counts the tokens of one provider and model. InputTokens and OutputTokens are
// totals; ReasoningTokens, CachedInputTokens and CacheWriteInputTokens are parts of them;
// TotalTokens is the two totals summed.
type TokenUsage struct {
	Provider              string `json:"provider,omitempty"`
	Model                 string `json:"model,omitempty"`
	InputTokens           *int64 `json:"inputTokens,omitempty" min:"0"`
	OutputTokens          *int64 `json:"outputTokens,omitempty" min:"0"`
	TotalTokens           *int64 `json:"totalTokens,omitempty" min:"0"`
	ReasoningTokens       *int64 `json:"reasoningTokens,omitempty" min:"0"`
	CachedInputTokens     *int64 `json:"cachedInputTokens,omitempty" min:"0"`
	CacheWriteInputTokens *int64 `json:"cacheWriteInputTokens,omitempty" min:"0"`
}

// Interrupt is something a run needs from outside before it can continue, such as an approval.
type Interrupt struct {
	SubagentRunID  string          `json:"subagentRunId,omitempty"`
	ID             string          `json:"id"`
	Reason         string          `json:"reason"`
	Message        string          `json:"message,omitempty"`
	ToolCallID     string          `json:"toolCallId,omitempty"`
	ResponseSchema json.RawMessage `json:"responseSchema,omitempty" kind:"object"`
	ExpiresAt      string          `json:"expiresAt,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty" kind:"object"`
}

// RunOutcome is why a run ended: "success" (the same as no outcome; PendingToolCallIDs names
// the frontend tool calls left to answer), "interrupt" (paused on Interrupts, at least one) or
// "cancelled".
type RunOutcome struct {
	Type               string      `json:"type" enum:"success,interrupt,cancelled"`
	PendingToolCallIDs []string    `json:"pendingToolCallIds,omitempty" variant:"type=success"`
	Interrupts         []Interrupt `json:"interrupts,omitempty" required:"type=interrupt" min:"1"`
}

// SubagentOutcome is why a subagent's part of a run ended: "success" (the same as no outcome)
// or "suspended" (awaiting the answers to InterruptIDs).
type SubagentOutcome struct {
	Type         string   `json:"type" enum:"success,suspended"`
	InterruptIDs []string `json:"interruptIds,omitempty" variant:"type=suspended"`
}

// Tool is a tool the agent may call.
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Parameters  json.RawMessage `json:"parameters,omitempty" kind:"value"`
	Metadata    json.RawMessage `json:"metadata,omitempty" kind:"object"`
}

// InputContext is a named piece of ambient information given to the agent for a run.
type InputContext struct {
	Description string `json:"description"`
	Value       string `json:"value"`
}

// ResumeEntry answers one interrupt, on the run that continues from it.
type ResumeEntry struct {
	InterruptID string          `json:"interruptId"`
	Status      string          `json:"status" enum:"resolved,cancelled"`
	Payload     json.RawMessage `json:"payload,omitempty" kind:"value"`
	Metadata    json.RawMessage `json:"metadata,omitempty" kind:"object"`
}

// RunAgentInput is a request to run an agent, echoed back in RUN_STARTED. Messages are the
// conversation's messages as AG-UI objects; State is any JSON value (null reads as none).
type RunAgentInput struct {
	ThreadID        string            `json:"threadId"`
	RunID           string            `json:"runId"`
	ProtocolVersion string            `json:"protocolVersion,omitempty"`
	ParentRunID     string            `json:"parentRunId,omitempty"`
	State           json.RawMessage   `json:"state,omitempty"`
	Messages        []json.RawMessage `json:"messages" kind:"message"`
	Tools           []Tool            `json:"tools,omitempty"`
	Context         []InputContext    `json:"context,omitempty"`
	ForwardedProps  json.RawMessage   `json:"forwardedProps,omitempty" kind:"value"`
	Resume          []ResumeEntry     `json:"resume,omitempty"`
}

// RunStarted (RUN_STARTED) opens a run of an agent on a thread.
type RunStarted struct {
	Timestamp       int64          `json:"timestamp"`
	ThreadID        string         `json:"threadId"`
	RunID           string         `json:"runId"`
	ProtocolVersion string         `json:"protocolVersion,omitempty"`
	ParentRunID     string         `json:"parentRunId,omitempty"`
	Input           *RunAgentInput `json:"input,omitempty"`
	AGUIExtras
}

// RunFinished (RUN_FINISHED) closes a run that did not fail.
type RunFinished struct {
	Timestamp int64           `json:"timestamp"`
	ThreadID  string          `json:"threadId"`
	RunID     string          `json:"runId"`
	Result    json.RawMessage `json:"result,omitempty" kind:"value"`
	Outcome   *RunOutcome     `json:"outcome,omitempty"`
	Usage     []TokenUsage    `json:"usage,omitempty"`
	AGUIExtras
}

// RunError (RUN_ERROR) ends a run that failed.
type RunError struct {
	Timestamp int64        `json:"timestamp"`
	Message   string       `json:"message"`
	Code      string       `json:"code,omitempty"`
	Usage     []TokenUsage `json:"usage,omitempty"`
	AGUIExtras
}

// StepStarted (STEP_STARTED) opens a step of a run.
type StepStarted struct {
	Timestamp int64  `json:"timestamp"`
	StepName  string `json:"stepName"`
	Attributable
}

// StepFinished (STEP_FINISHED) closes a step.
type StepFinished struct {
	Timestamp int64  `json:"timestamp"`
	StepName  string `json:"stepName"`
	Attributable
}

// TextMessageStart (TEXT_MESSAGE_START) opens a streamed text message. Role also takes "tool",
// which existing producers send (@ag-ui/core 1.0.0 carries tool output in TOOL_CALL_RESULT).
type TextMessageStart struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Role      string `json:"role,omitempty" enum:"developer,system,assistant,user,tool"`
	Name      string `json:"name,omitempty"`
	Attributable
}

// TextMessageContent (TEXT_MESSAGE_CONTENT) appends a fragment to a text message.
type TextMessageContent struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Delta     string `json:"delta"`
	Attributable
}

// TextMessageEnd (TEXT_MESSAGE_END) closes a text message.
type TextMessageEnd struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Attributable
}

// TextMessageChunk (TEXT_MESSAGE_CHUNK) stands in for a text message start, content and end.
type TextMessageChunk struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId,omitempty"`
	Role      string `json:"role,omitempty" enum:"developer,system,assistant,user"`
	Delta     string `json:"delta,omitempty"`
	Name      string `json:"name,omitempty"`
	Attributable
}

// ToolCallStart (TOOL_CALL_START) opens a tool call.
type ToolCallStart struct {
	Timestamp       int64  `json:"timestamp"`
	ToolCallID      string `json:"toolCallId"`
	ToolCallName    string `json:"toolCallName"`
	ParentMessageID string `json:"parentMessageId,omitempty"`
	Attributable
}

// ToolCallArgs (TOOL_CALL_ARGS) appends a fragment of a tool call's arguments.
type ToolCallArgs struct {
	Timestamp  int64  `json:"timestamp"`
	ToolCallID string `json:"toolCallId"`
	Delta      string `json:"delta"`
	Attributable
}

// ToolCallEnd (TOOL_CALL_END) closes a tool call.
type ToolCallEnd struct {
	Timestamp  int64  `json:"timestamp"`
	ToolCallID string `json:"toolCallId"`
	Attributable
}

// ToolCallChunk (TOOL_CALL_CHUNK) stands in for a tool call start, args and end.
type ToolCallChunk struct {
	Timestamp       int64  `json:"timestamp"`
	ToolCallID      string `json:"toolCallId,omitempty"`
	ToolCallName    string `json:"toolCallName,omitempty"`
	ParentMessageID string `json:"parentMessageId,omitempty"`
	Delta           string `json:"delta,omitempty"`
	Attributable
}

// ToolCallResult (TOOL_CALL_RESULT) carries the result of a tool call. Content is a string or
// an array of content parts (text, image, audio, video, document objects).
type ToolCallResult struct {
	Timestamp  int64           `json:"timestamp"`
	MessageID  string          `json:"messageId"`
	ToolCallID string          `json:"toolCallId"`
	Content    json.RawMessage `json:"content" kind:"content"`
	Role       string          `json:"role,omitempty" enum:"tool"`
	Attributable
}

// StateSnapshot (STATE_SNAPSHOT) replaces the agent state.
type StateSnapshot struct {
	Timestamp int64           `json:"timestamp"`
	Snapshot  json.RawMessage `json:"snapshot"`
	Attributable
}

// StateDelta (STATE_DELTA) changes the agent state by RFC 6902 operations.
type StateDelta struct {
	Timestamp int64            `json:"timestamp"`
	Delta     []PatchOperation `json:"delta"`
	Attributable
}

// MessagesSnapshot (MESSAGES_SNAPSHOT) replaces the conversation.
type MessagesSnapshot struct {
	Timestamp int64             `json:"timestamp"`
	Messages  []json.RawMessage `json:"messages" kind:"message"`
	AGUIExtras
}

// ActivitySnapshot (ACTIVITY_SNAPSHOT) replaces an activity message.
type ActivitySnapshot struct {
	Timestamp    int64           `json:"timestamp"`
	MessageID    string          `json:"messageId"`
	ActivityType string          `json:"activityType"`
	Content      json.RawMessage `json:"content" kind:"object"`
	Replace      *bool           `json:"replace,omitempty"`
	Attributable
}

// ActivityDelta (ACTIVITY_DELTA) changes an activity message by RFC 6902 operations.
type ActivityDelta struct {
	Timestamp    int64            `json:"timestamp"`
	MessageID    string           `json:"messageId"`
	ActivityType string           `json:"activityType"`
	Patch        []PatchOperation `json:"patch"`
	Attributable
}

// ReasoningStart (REASONING_START) opens a span of reasoning.
type ReasoningStart struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Attributable
}

// ReasoningMessageStart (REASONING_MESSAGE_START) opens a reasoning message.
type ReasoningMessageStart struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Role      string `json:"role" enum:"reasoning"`
	Attributable
}

// ReasoningMessageContent (REASONING_MESSAGE_CONTENT) appends to a reasoning message.
type ReasoningMessageContent struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Delta     string `json:"delta"`
	Attributable
}

// ReasoningMessageEnd (REASONING_MESSAGE_END) closes a reasoning message.
type ReasoningMessageEnd struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Attributable
}

// ReasoningMessageChunk (REASONING_MESSAGE_CHUNK) stands in for a reasoning message start, content and end.
type ReasoningMessageChunk struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId,omitempty"`
	Delta     string `json:"delta,omitempty"`
	Attributable
}

// ReasoningEnd (REASONING_END) closes a span of reasoning.
type ReasoningEnd struct {
	Timestamp int64  `json:"timestamp"`
	MessageID string `json:"messageId"`
	Attributable
}

// ReasoningEncryptedValue (REASONING_ENCRYPTED_VALUE) carries a provider's encrypted reasoning
// for a tool call or a message, which a consumer stores and returns on a later turn.
type ReasoningEncryptedValue struct {
	Timestamp      int64  `json:"timestamp"`
	Subtype        string `json:"subtype" enum:"tool-call,message"`
	EntityID       string `json:"entityId"`
	EncryptedValue string `json:"encryptedValue"`
	Attributable
}

// RawEvent (RAW) passes through an event of another system.
type RawEvent struct {
	Timestamp int64           `json:"timestamp"`
	Event     json.RawMessage `json:"event"`
	Source    string          `json:"source,omitempty"`
	Attributable
}

// Custom (CUSTOM) is an application-defined event.
type Custom struct {
	Timestamp int64           `json:"timestamp"`
	Name      string          `json:"name"`
	Value     json.RawMessage `json:"value"`
	Attributable
}

// SubagentStarted (SUBAGENT_STARTED) announces a subagent invocation; the events of its work
// carry its SubagentRunID. ParentSubagentRunID names the subagent run it was invoked from, if any.
type SubagentStarted struct {
	Timestamp           int64  `json:"timestamp"`
	SubagentRunID       string `json:"subagentRunId"`
	Name                string `json:"name"`
	Description         string `json:"description,omitempty"`
	ParentSubagentRunID string `json:"parentSubagentRunId,omitempty"`
	ParentToolCallID    string `json:"parentToolCallId,omitempty"`
	ParentMessageID     string `json:"parentMessageId,omitempty"`
	AGUIExtras
}

// SubagentFinished (SUBAGENT_FINISHED) ends a subagent invocation's part of the run.
type SubagentFinished struct {
	Timestamp     int64            `json:"timestamp"`
	SubagentRunID string           `json:"subagentRunId"`
	Result        json.RawMessage  `json:"result,omitempty" kind:"value"`
	Outcome       *SubagentOutcome `json:"outcome,omitempty"`
	AGUIExtras
}

// SubagentError (SUBAGENT_ERROR) reports that a subagent invocation failed; the run may go on.
type SubagentError struct {
	Timestamp     int64  `json:"timestamp"`
	SubagentRunID string `json:"subagentRunId"`
	Message       string `json:"message"`
	Code          string `json:"code,omitempty"`
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

// EventType implements Event.
func (SubagentStarted) EventType() string { return "SUBAGENT_STARTED" }

// Channel implements Event.
func (SubagentStarted) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e SubagentStarted) MarshalJSON() ([]byte, error) {
	type plain SubagentStarted
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (SubagentFinished) EventType() string { return "SUBAGENT_FINISHED" }

// Channel implements Event.
func (SubagentFinished) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e SubagentFinished) MarshalJSON() ([]byte, error) {
	type plain SubagentFinished
	return withType(e.EventType(), plain(e))
}

// EventType implements Event.
func (SubagentError) EventType() string { return "SUBAGENT_ERROR" }

// Channel implements Event.
func (SubagentError) Channel() routing.Channel { return routing.AGUI }

// MarshalJSON writes the wire form, "type" first.
func (e SubagentError) MarshalJSON() ([]byte, error) {
	type plain SubagentError
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
		SubagentStarted{},
		SubagentFinished{},
		SubagentError{},
	)
}
