package event

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
)

// Message is an AG-UI message (@ag-ui/core's MessageSchema), as MESSAGES_SNAPSHOT and a run's
// input carry it. Which fields apply depends on Role: Content is a string, an array of content
// parts (user and tool messages) or an object (activity messages).
type Message struct {
	ID             string          `json:"id"`
	Role           string          `json:"role"`
	Content        json.RawMessage `json:"content,omitempty"`
	Name           string          `json:"name,omitempty"`
	ToolCalls      []ToolCall      `json:"toolCalls,omitempty"`
	ToolCallID     string          `json:"toolCallId,omitempty"`
	Error          string          `json:"error,omitempty"`
	ActivityType   string          `json:"activityType,omitempty"`
	EncryptedValue string          `json:"encryptedValue,omitempty"`
	SubagentRunID  string          `json:"subagentRunId,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
}

// ToolCall is a call an assistant message made.
type ToolCall struct {
	ID             string          `json:"id"`
	Type           string          `json:"type" enum:"function"`
	Function       FunctionCall    `json:"function"`
	EncryptedValue string          `json:"encryptedValue,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty" kind:"object"`
}

// FunctionCall is the name and arguments (a JSON string, possibly partial) of a tool call.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// messageSpec is what MessageSchema checks of a message (kind "message" in a tag): an id, a
// known role, and the fields of that role's schema.
func messageSpec() []fieldSpec {
	roles := func(rs ...string) *condition { return &condition{field: "role", values: rs} }
	toolCalls := typeSpec(reflect.TypeOf([]ToolCall(nil)), "")
	toolCalls.name, toolCalls.variant = "toolCalls", roles("assistant")
	return []fieldSpec{
		{name: "id", kind: kindString, required: true},
		{name: "role", kind: kindString, required: true,
			enum: []string{"developer", "system", "assistant", "user", "tool", "activity", "reasoning"}},
		{name: "content", kind: kindString, required: true, variant: roles("developer", "system", "reasoning")},
		{name: "content", kind: kindString, variant: roles("assistant")},
		{name: "content", kind: kindContent, elem: &fieldSpec{kind: kindObject, object: contentPartSpec()}, required: true, variant: roles("user", "tool")},
		{name: "content", kind: kindObject, required: true, variant: roles("activity")},
		{name: "name", kind: kindString, variant: roles("developer", "system", "assistant", "user")},
		toolCalls,
		{name: "toolCallId", kind: kindString, required: true, variant: roles("tool")},
		{name: "error", kind: kindString, variant: roles("tool")},
		{name: "activityType", kind: kindString, required: true, variant: roles("activity")},
		{name: "encryptedValue", kind: kindString},
		{name: "subagentRunId", kind: kindString},
		{name: "metadata", kind: kindObject},
	}
}

// contentPartSpec is what ContentPartSchema checks of a part of a message's content: text, or
// media (image, audio, video, document) with the source of its bytes.
func contentPartSpec() []fieldSpec {
	types := func(ts ...string) *condition { return &condition{field: "type", values: ts} }
	source := []fieldSpec{
		{name: "type", kind: kindString, required: true, enum: []string{"data", "url", "file"}},
		{name: "value", kind: kindString, required: true},
		{name: "mimeType", kind: kindString, required: true, variant: types("data")},
		{name: "mimeType", kind: kindString, variant: types("url", "file")},
		{name: "provider", kind: kindString, variant: types("file")},
	}
	return []fieldSpec{
		{name: "type", kind: kindString, required: true, enum: []string{"text", "image", "audio", "video", "document"}},
		{name: "id", kind: kindString},
		{name: "text", kind: kindString, required: true, variant: types("text")},
		{name: "source", kind: kindObject, object: source, required: true, variant: types("image", "audio", "video", "document")},
	}
}

// DecodeRunAgentInput reads a request to run an agent as @ag-ui/core's RunAgentInputSchema
// checks it (threadId, runId and messages required; every message as its role's schema wants
// it), and refuses an empty threadId or runId, which cannot name a thread or a run. Fields it
// does not know are allowed.
func DecodeRunAgentInput(data []byte) (RunAgentInput, error) {
	var in RunAgentInput
	if err := validateInput(data); err != nil {
		return in, err
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return in, fieldError("", "decoding the run input: %v", err)
	}
	// encoding/json matches names regardless of case: what was decoded must pass the check
	// as well (see Decode).
	out, err := json.Marshal(in)
	if err == nil {
		err = validateInput(out)
	}
	switch {
	case err != nil:
		return in, fieldError("", "decoding the run input: a field name that differs from the schema's only in case: %v", err)
	case in.ThreadID == "":
		return in, fieldError("threadId", "threadId is empty: want the thread's id")
	case in.RunID == "":
		return in, fieldError("runId", "runId is empty: want the run's id")
	}
	return in, nil
}

var runAgentInputSpec = specOf(reflect.TypeOf(RunAgentInput{}))

func validateInput(data []byte) error {
	fields, err := parseObject(data)
	if err != nil {
		return err
	}
	m := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		m[f.key] = f.value
	}
	for key := range m {
		for _, f := range runAgentInputSpec {
			if key != f.name && strings.EqualFold(key, f.name) {
				return fieldError(key, "field %q differs from %q only in case", key, f.name)
			}
		}
	}
	return validateObject("", m, runAgentInputSpec)
}

// Attribution is the thread and run an AG-UI event belongs to: its top-level threadId and
// runId. RUN_STARTED and RUN_FINISHED have them as fields of their own; other types carry them
// as extra fields, which @ag-ui/core's schemas let through.
type Attribution struct {
	Type     string
	ThreadID string
	RunID    string
}

// AttributionOf reads an event's type and its top-level threadId and runId (empty where absent
// or not strings).
func AttributionOf(data []byte) (Attribution, error) {
	raw, err := Parse(data)
	if err != nil {
		return Attribution{}, err
	}
	return raw.Attribution(), nil
}

// WithoutAttribution returns an AG-UI event without the top-level threadId and runId that its
// type does not define: @ag-ui/client strips them, with a console warning for each. Other
// events come back as they are.
func WithoutAttribution(data []byte) ([]byte, error) {
	raw, err := Parse(data)
	if err != nil {
		return data, err
	}
	return raw.WithoutAttribution(data), nil
}

// Attribution is the event's type and its top-level threadId and runId.
func (ev *Raw) Attribution() Attribution {
	a := Attribution{Type: ev.Type}
	for _, f := range ev.fields {
		switch f.key {
		case "threadId":
			_ = json.Unmarshal(f.value, &a.ThreadID)
		case "runId":
			_ = json.Unmarshal(f.value, &a.RunID)
		}
	}
	return a
}

// definesAttribution reports whether an AG-UI type has threadId and runId fields of its own.
func definesAttribution(typ string) bool { return typ == "RUN_STARTED" || typ == "RUN_FINISHED" }

// WithoutAttribution returns data, the event ev was parsed from, without the top-level threadId
// and runId its type does not define (see the function WithoutAttribution).
func (ev *Raw) WithoutAttribution(data []byte) []byte {
	if definesAttribution(ev.Type) {
		return data
	}
	kept := make([]field, 0, len(ev.fields))
	for _, f := range ev.fields {
		if f.key != "threadId" && f.key != "runId" {
			kept = append(kept, f)
		}
	}
	if len(kept) == len(ev.fields) {
		return data
	}
	ev.fields = kept
	return ev.Encode()
}

// MaxAttributionBytes bounds an event's threadId and runId.
const MaxAttributionBytes = 256

// Attribute attributes an AG-UI event to a thread and a run: it sets its top-level threadId and
// runId to the given ones, where not empty. An event that names another thread or run already is
// an error.
func (ev *Raw) Attribute(threadID, runID string) error {
	for _, f := range []struct{ key, value string }{{"threadId", threadID}, {"runId", runID}} {
		if f.value == "" {
			continue
		}
		value, _ := json.Marshal(f.value)
		i := slices.IndexFunc(ev.fields, func(x field) bool { return x.key == f.key })
		if i < 0 {
			ev.fields = append(ev.fields, field{f.key, value})
			continue
		}
		var got string
		if json.Unmarshal(ev.fields[i].value, &got) != nil || got != f.value {
			return fieldError(f.key, "%s is %s, not %q", f.key, ev.fields[i].value, f.value)
		}
	}
	return ev.CheckAttribution()
}

// CheckAttribution checks an AG-UI event's top-level threadId and runId, where it has them:
// strings of at most MaxAttributionBytes, which name its thread and run.
func (ev *Raw) CheckAttribution() error {
	for _, f := range ev.fields {
		if f.key != "threadId" && f.key != "runId" {
			continue
		}
		var s string
		if json.Unmarshal(f.value, &s) != nil || s == "" || len(s) > MaxAttributionBytes {
			return fieldError(f.key, "%s must be a non-empty string of at most %d bytes", f.key, MaxAttributionBytes)
		}
	}
	return nil
}
