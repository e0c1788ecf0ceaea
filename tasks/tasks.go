// Package tasks keeps the view of one A2A task from its stored events, as A2A 1.0's Task object
// (id, contextId, status, artifacts, history), and maps each stored A2A event to the A2A 1.0
// stream response it stands for, once. It is pure: bus stores the views and feeds the events.
//
// Stored events and what they fill:
//   - TASK_SUBMITTED: the task (id, contextId, state TASK_STATE_SUBMITTED), of the agent it
//     names; its input, an A2A message, opens the history. Response: the task. The other events
//     of a task count only after it: a task id no TASK_SUBMITTED named has no view.
//   - TASK_STATUS_UPDATE: status.state and status.message (the message joins the history; a
//     user's message, which eventsd stores with the state TASK_STATE_SUBMITTED when a message
//     continues a task, joins only the history). Response: statusUpdate.
//   - INPUT_REQUIRED, AUTH_REQUIRED: status.state TASK_STATE_INPUT_REQUIRED or
//     TASK_STATE_AUTH_REQUIRED, with an agent message holding the prompt (or the authUrl as data).
//     With the task in that state already, no response: one update, not two.
//   - AGENT_MESSAGE: an agent message (its parts, else its content as one text part) in the
//     history, and as status.message of the current state. Response: statusUpdate.
//   - ARTIFACT_CREATED: the artifact (replacing one of its id). Response: artifactUpdate.
//   - ARTIFACT_UPDATED: its content's parts appended to the artifact, or replacing them.
//     Response: artifactUpdate with append and lastChunk.
//
// Once the task is in a terminal state, its later events change nothing: A2A tasks do not
// start again.
//
// Parts in the 0.3 form ({"kind":"text","text":...}) are read as 1.0 parts ({"text":...}).
package tasks

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// Task states of A2A 1.0.
const (
	StateSubmitted     = "TASK_STATE_SUBMITTED"
	StateWorking       = "TASK_STATE_WORKING"
	StateInputRequired = "TASK_STATE_INPUT_REQUIRED"
	StateAuthRequired  = "TASK_STATE_AUTH_REQUIRED"
	StateCompleted     = "TASK_STATE_COMPLETED"
	StateFailed        = "TASK_STATE_FAILED"
	StateCanceled      = "TASK_STATE_CANCELED"
	StateRejected      = "TASK_STATE_REJECTED"
)

// Message roles of A2A 1.0.
const (
	RoleUser  = "ROLE_USER"
	RoleAgent = "ROLE_AGENT"
)

// Terminal reports whether a task in state is over; Interrupted whether it waits for the user.
func Terminal(state string) bool {
	return state == StateCompleted || state == StateFailed || state == StateCanceled || state == StateRejected
}

// Interrupted reports whether a task in state waits for the user.
func Interrupted(state string) bool { return state == StateInputRequired || state == StateAuthRequired }

// Task is an A2A 1.0 Task.
type Task struct {
	ID        string     `json:"id"`
	ContextID string     `json:"contextId,omitempty"`
	Status    Status     `json:"status"`
	Artifacts []Artifact `json:"artifacts,omitempty"`
	History   []Message  `json:"history,omitempty"`
}

// Status is an A2A 1.0 TaskStatus.
type Status struct {
	State     string   `json:"state"`
	Message   *Message `json:"message,omitempty"`
	Timestamp string   `json:"timestamp,omitempty"`
}

// Message is an A2A 1.0 Message.
type Message struct {
	MessageID string            `json:"messageId"`
	ContextID string            `json:"contextId,omitempty"`
	TaskID    string            `json:"taskId,omitempty"`
	Role      string            `json:"role"`
	Parts     []json.RawMessage `json:"parts"`
	Metadata  json.RawMessage   `json:"metadata,omitempty"`
}

// Artifact is an A2A 1.0 Artifact.
type Artifact struct {
	ArtifactID  string            `json:"artifactId"`
	Name        string            `json:"name,omitempty"`
	Description string            `json:"description,omitempty"`
	Parts       []json.RawMessage `json:"parts"`
	Metadata    json.RawMessage   `json:"metadata,omitempty"`
}

// Response is an A2A 1.0 StreamResponse: exactly one of its fields is set.
type Response struct {
	Task           *Task           `json:"task,omitempty"`
	StatusUpdate   *StatusUpdate   `json:"statusUpdate,omitempty"`
	ArtifactUpdate *ArtifactUpdate `json:"artifactUpdate,omitempty"`
}

// StatusUpdate is an A2A 1.0 TaskStatusUpdateEvent.
type StatusUpdate struct {
	TaskID    string `json:"taskId"`
	ContextID string `json:"contextId"`
	Status    Status `json:"status"`
}

// ArtifactUpdate is an A2A 1.0 TaskArtifactUpdateEvent.
type ArtifactUpdate struct {
	TaskID    string   `json:"taskId"`
	ContextID string   `json:"contextId"`
	Artifact  Artifact `json:"artifact"`
	Append    bool     `json:"append,omitempty"`
	LastChunk bool     `json:"lastChunk,omitempty"`
}

// ErrMalformed is returned for an event that is not a valid A2A event.
var ErrMalformed = errors.New("tasks: malformed event")

// View is the view of one task as of the stream's sequence Seq (of the stream's life Epoch).
type View struct {
	Epoch uint64 `json:"epoch"`
	Seq   uint64 `json:"seq"`
	Agent string `json:"agent,omitempty"` // TASK_SUBMITTED's agentName
	Task  Task   `json:"task"`
}

// Apply applies the event data, stored at seq in the stream of epoch, to v, and returns the
// stream response it stands for (nil: none, or not an event of v's task).
func (v *View) Apply(data []byte, seq, epoch uint64) (*Response, error) {
	ev, err := event.Decode(routing.A2A, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if v.Epoch != epoch {
		*v = View{Task: Task{ID: v.Task.ID}}
	}
	if v.Seq != 0 && Terminal(v.Task.Status.State) {
		return nil, nil
	}
	resp := v.apply(ev)
	if resp != nil {
		v.Epoch, v.Seq = epoch, seq
	}
	return resp, nil
}

func (v *View) apply(ev event.Event) *Response {
	switch e := ev.(type) {
	case event.TaskSubmitted:
		return v.submitted(e)
	case event.TaskStatusUpdate:
		return v.status(e.TaskID, e.ContextID, e.Timestamp, e.State, agentMessage(e.Message, e.TaskID, e.ContextID))
	case event.InputRequired:
		return v.status(e.TaskID, e.ContextID, e.Timestamp, StateInputRequired, textMessage(e.TaskID, e.ContextID, e.Timestamp, e.Prompt))
	case event.AuthRequired:
		data, _ := json.Marshal(map[string]any{"data": map[string]string{"authUrl": e.AuthURL}})
		m := &Message{MessageID: fmt.Sprint("auth-", e.Timestamp.UnixNano()), TaskID: e.TaskID, ContextID: e.ContextID, Role: RoleAgent, Parts: []json.RawMessage{data}}
		return v.status(e.TaskID, e.ContextID, e.Timestamp, StateAuthRequired, m)
	case event.AgentMessage:
		if !v.ours(e.TaskID) {
			return nil
		}
		m := textMessage(e.TaskID, e.ContextID, e.Timestamp, e.Content)
		m.MessageID = e.MessageID
		if len(e.Parts) > 0 {
			m.Parts = convertParts(e.Parts)
		}
		return v.status(e.TaskID, e.ContextID, e.Timestamp, v.Task.Status.State, m)
	case event.ArtifactCreated:
		return v.artifact(e.TaskID, e.ContextID, convertArtifact(e.Artifact), false, false)
	case event.ArtifactUpdated:
		a := Artifact{ArtifactID: e.ArtifactID, Parts: parts(e.Content)}
		return v.artifact(e.TaskID, e.ContextID, a, e.Append, e.LastChunk)
	}
	return nil
}

// ours reports whether an event of task id belongs to v: a task submitted to an agent. Events
// of a task never submitted make no view.
func (v *View) ours(id string) bool { return id != "" && id == v.Task.ID && v.Agent != "" }

// submitted starts the task, once, for the agent its TASK_SUBMITTED names.
func (v *View) submitted(e event.TaskSubmitted) *Response {
	if e.TaskID == "" || e.TaskID != v.Task.ID || v.Agent != "" || e.AgentName == "" {
		return nil
	}
	v.Agent = e.AgentName
	v.Task.ContextID = e.ContextID
	v.Task.Status = Status{State: StateSubmitted, Timestamp: stamp(e.Timestamp)}
	if m := agentMessage(e.Input, e.TaskID, e.ContextID); m != nil {
		if m.Role == "" || m.Role == RoleAgent {
			m.Role = RoleUser
		}
		v.Task.History = append(v.Task.History, *m)
	}
	t := v.Task
	return &Response{Task: &t}
}

// status sets the task's status; it gives no response for a state the task is in already with
// no new message (an INPUT_REQUIRED event after a status update to that state, say).
func (v *View) status(id, contextID string, at time.Time, state string, m *Message) *Response {
	if !v.ours(id) {
		return nil
	}
	if state == "" {
		state = StateWorking
	}
	same := v.Task.Status.State == state
	if same && (m == nil || v.Task.Status.Message != nil && messageText(*v.Task.Status.Message) == messageText(*m)) {
		return nil
	}
	if m != nil && !slices.ContainsFunc(v.Task.History, func(h Message) bool { return h.MessageID == m.MessageID }) {
		v.Task.History = append(v.Task.History, *m)
	}
	if m != nil && m.Role == RoleUser {
		m = nil // the user's answer: in the history, not the agent's word on the state
	}
	v.Task.Status = Status{State: state, Message: m, Timestamp: stamp(at)}
	if contextID != "" {
		v.Task.ContextID = contextID
	}
	return &Response{StatusUpdate: &StatusUpdate{TaskID: id, ContextID: v.Task.ContextID, Status: v.Task.Status}}
}

func (v *View) artifact(id, contextID string, a Artifact, appendParts, last bool) *Response {
	if !v.ours(id) {
		return nil
	}
	i := slices.IndexFunc(v.Task.Artifacts, func(x Artifact) bool { return x.ArtifactID == a.ArtifactID })
	switch {
	case i < 0:
		v.Task.Artifacts = append(v.Task.Artifacts, a)
	case appendParts:
		v.Task.Artifacts[i].Parts = append(v.Task.Artifacts[i].Parts, a.Parts...)
	default:
		v.Task.Artifacts[i].Parts = a.Parts
		if a.Name != "" {
			v.Task.Artifacts[i] = a
		}
	}
	if contextID != "" {
		v.Task.ContextID = contextID
	}
	return &Response{ArtifactUpdate: &ArtifactUpdate{TaskID: id, ContextID: v.Task.ContextID, Artifact: a, Append: appendParts, LastChunk: last}}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// textMessage is an agent message of one text part.
func textMessage(taskID, contextID string, at time.Time, text string) *Message {
	part, _ := json.Marshal(map[string]string{"text": text})
	return &Message{MessageID: fmt.Sprint("msg-", at.UnixNano()), TaskID: taskID, ContextID: contextID, Role: RoleAgent, Parts: []json.RawMessage{part}}
}

// agentMessage reads a stored A2A message (0.3 or 1.0 form); nil for none.
func agentMessage(raw json.RawMessage, taskID, contextID string) *Message {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var m struct {
		MessageID string            `json:"messageId"`
		Role      string            `json:"role"`
		Parts     []json.RawMessage `json:"parts"`
		Metadata  json.RawMessage   `json:"metadata"`
	}
	if json.Unmarshal(raw, &m) != nil || m.MessageID == "" {
		return nil
	}
	role := RoleAgent
	if m.Role == "user" || m.Role == RoleUser {
		role = RoleUser
	}
	return &Message{MessageID: m.MessageID, TaskID: taskID, ContextID: contextID, Role: role, Parts: convertParts(m.Parts), Metadata: m.Metadata}
}

func convertArtifact(a event.Artifact) Artifact {
	return Artifact{ArtifactID: a.ArtifactID, Name: a.Name, Description: a.Description, Parts: convertParts(a.Parts), Metadata: a.Metadata}
}

// parts reads an ARTIFACT_UPDATED content: an array of parts, one part, or a string (one text
// part).
func parts(content json.RawMessage) []json.RawMessage {
	var list []json.RawMessage
	if json.Unmarshal(content, &list) == nil {
		return convertParts(list)
	}
	var s string
	if json.Unmarshal(content, &s) == nil {
		part, _ := json.Marshal(map[string]string{"text": s})
		return []json.RawMessage{part}
	}
	if len(content) > 0 {
		return convertParts([]json.RawMessage{content})
	}
	return nil
}

// convertParts reads parts in the 0.3 form ({"kind":"text","text":...}, {"kind":"file",
// "file":{...}}, {"kind":"data","data":...}) as 1.0 parts; 1.0 parts stay as they are.
func convertParts(in []json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, 0, len(in))
	for _, raw := range in {
		var p struct {
			Kind     string          `json:"kind"`
			Text     *string         `json:"text"`
			Data     json.RawMessage `json:"data"`
			Metadata json.RawMessage `json:"metadata"`
			File     *struct {
				Bytes    string `json:"bytes"`
				URI      string `json:"uri"`
				Name     string `json:"name"`
				MimeType string `json:"mimeType"`
			} `json:"file"`
		}
		if json.Unmarshal(raw, &p) != nil || p.Kind == "" {
			out = append(out, raw)
			continue
		}
		m := map[string]any{}
		switch {
		case p.Kind == "text" && p.Text != nil:
			m["text"] = *p.Text
		case p.Kind == "data":
			m["data"] = p.Data
		case p.Kind == "file" && p.File != nil:
			if p.File.Bytes != "" {
				m["raw"] = p.File.Bytes
			} else {
				m["url"] = p.File.URI
			}
			if p.File.Name != "" {
				m["filename"] = p.File.Name
			}
			if p.File.MimeType != "" {
				m["mediaType"] = p.File.MimeType
			}
		default:
			out = append(out, raw)
			continue
		}
		if len(p.Metadata) > 0 {
			m["metadata"] = p.Metadata
		}
		b, _ := json.Marshal(m)
		out = append(out, b)
	}
	return out
}

// messageText is a message's parts, for comparing two messages.
func messageText(m Message) string {
	b, _ := json.Marshal(m.Parts)
	return string(b)
}

// Failed is the update that ends a task in TASK_STATE_FAILED, with an agent message saying why.
func Failed(why string) event.TaskStatusUpdate {
	return event.TaskStatusUpdate{State: StateFailed, Message: AgentText(why)}
}

// AgentText is an agent message of one text part, with a new message id, as a stored event's
// message field holds it.
func AgentText(text string) json.RawMessage {
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	part, _ := json.Marshal(map[string]string{"text": text})
	b, _ := json.Marshal(Message{MessageID: "msg-" + hex.EncodeToString(id), Role: RoleAgent, Parts: []json.RawMessage{part}})
	return b
}

// MaxViewBytes bounds the JSON of a task's view.
const MaxViewBytes = 1 << 20

// Bound keeps the view within limit bytes of JSON: the oldest messages of the history go
// first, then the oldest artifacts, then the status message. It reports whether it dropped
// anything. It weighs the view by an upper bound of its JSON, without marshalling it.
func (v *View) Bound(limit int) bool {
	over := v.weight() - limit
	if over <= 0 {
		return false
	}
	n := 0
	for ; over > 0 && n < len(v.Task.History); n++ {
		over -= v.Task.History[n].weight()
	}
	v.Task.History = slices.Delete(v.Task.History, 0, n)
	n = 0
	for ; over > 0 && n < len(v.Task.Artifacts); n++ {
		over -= v.Task.Artifacts[n].weight()
	}
	v.Task.Artifacts = slices.Delete(v.Task.Artifacts, 0, n)
	if over > 0 {
		v.Task.Status.Message = nil
	}
	return true
}

// itemWeight bounds the JSON a message or an artifact adds besides its ids, parts and
// metadata: field names, quotes, commas, the role, escapes in the ids.
const itemWeight = 256

// weight is an upper bound of the view's JSON.
func (v *View) weight() int {
	n := itemWeight + len(v.Agent) + 6*(len(v.Task.ID)+len(v.Task.ContextID))
	if m := v.Task.Status.Message; m != nil {
		n += m.weight()
	}
	for _, m := range v.Task.History {
		n += m.weight()
	}
	for _, a := range v.Task.Artifacts {
		n += a.weight()
	}
	return n
}

func (m Message) weight() int {
	return itemWeight + 6*(len(m.MessageID)+len(m.ContextID)+len(m.TaskID)+len(m.Role)) + partsWeight(m.Parts) + len(m.Metadata)
}

func (a Artifact) weight() int {
	return itemWeight + 6*(len(a.ArtifactID)+len(a.Name)+len(a.Description)) + partsWeight(a.Parts) + len(a.Metadata)
}

// partsWeight is the JSON of parts: each as it is stored, and a comma.
func partsWeight(parts []json.RawMessage) int {
	n := 2
	for _, p := range parts {
		n += len(p) + 1
	}
	return n
}
