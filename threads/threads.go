// Package threads keeps the view of one AG-UI thread from its events: its messages and state
// as @ag-ui/client 1.0.0's default apply builds a client's, the run in progress and what is
// open in it, and the runs recently seen. A thread stream opens with a prelude computed from
// it. The package is pure: bus stores the views and feeds the events.
//
// The rules follow the client's (defaultApplyEvents), so that a client that joins with the
// prelude ends with the same messages and state as one that watched every event:
//   - TEXT_MESSAGE_START and REASONING_MESSAGE_START reuse a message of that id, or add one
//     with empty content; *_CONTENT append to it; TOOL_CALL_START adds a call to its parent
//     assistant message (or to a new one, named by parentMessageId or the call's id) unless a
//     message holds it; TOOL_CALL_ARGS append to its arguments; TOOL_CALL_RESULT inserts a tool
//     message after the assistant message that holds the call.
//   - MESSAGES_SNAPSHOT replaces the messages; STATE_SNAPSHOT the state; STATE_DELTA patches it
//     (RFC 6902; a patch that fails leaves it as it was); ACTIVITY_* add and patch activity
//     messages; RUN_STARTED adds its input's messages that are missing.
//
// A view is bounded: past MaxViewBytes of JSON, its oldest closed messages are left out, and
// Omitted counts them.
package threads

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// MaxViewBytes bounds a view's JSON.
const MaxViewBytes = 1 << 20

// maxRuns is how many recent runs a view remembers, for resuming within them.
const maxRuns = 32

// ErrMalformed is returned for an event that is not a valid AG-UI event.
var ErrMalformed = errors.New("threads: malformed event")

// View is the view of one thread as of the stream's sequence Seq (of the stream's life Epoch).
type View struct {
	Epoch    uint64          `json:"epoch"`
	Seq      uint64          `json:"seq"`
	ThreadID string          `json:"threadId"`
	Messages []event.Message `json:"messages"`
	State    json.RawMessage `json:"state,omitempty"`   // nil: none yet
	Run      *Run            `json:"run,omitempty"`     // the run in progress
	Runs     []Span          `json:"runs,omitempty"`    // the runs recently seen, oldest first
	LastEnd  json.RawMessage `json:"lastEnd,omitempty"` // the last run's RUN_FINISHED or RUN_ERROR, as stored
	Omitted  int             `json:"omitted,omitempty"`
}

// Run is the run in progress on a thread and what is open in it.
type Run struct {
	ID      string          `json:"id"`
	Started json.RawMessage `json:"started"` // its RUN_STARTED, as stored
	Open    Open            `json:"open"`
}

// Open is what is open in a run: what a client joining now must see started again.
type Open struct {
	Steps     []Item `json:"steps,omitempty"`
	Text      []Item `json:"text,omitempty"`
	Tools     []Item `json:"tools,omitempty"`
	Spans     []Item `json:"spans,omitempty"`     // reasoning spans
	Reasoning []Item `json:"reasoning,omitempty"` // reasoning messages
}

// Item is one open step, message, tool call or reasoning span.
type Item struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`   // a step's or a tool call's name, a message's name
	Role     string `json:"role,omitempty"`   // a text message's
	Parent   string `json:"parent,omitempty"` // a tool call's parent message
	Subagent string `json:"subagent,omitempty"`
}

// Span is one run as the stream holds it: from its RUN_STARTED to its end (0 while it runs).
type Span struct {
	ID    string `json:"id"`
	Start uint64 `json:"start"`
	End   uint64 `json:"end,omitempty"`
}

// Of reports whether v was built from the stream of epoch.
func (v *View) Of(epoch uint64) bool { return v.Epoch == epoch }

// Apply applies the event data, stored at seq in the stream of epoch, to v if it belongs to
// v's thread (its top-level threadId), and reports whether v changed. maxBytes bounds v's JSON
// (MaxViewBytes or less). An event that is not AG-UI JSON gives ErrMalformed and changes nothing.
func (v *View) Apply(data []byte, seq, epoch uint64, maxBytes int) (bool, error) {
	a, err := event.AttributionOf(data)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if a.ThreadID == "" || a.ThreadID != v.ThreadID {
		return false, nil
	}
	ev, err := event.Decode(routing.AGUI, data)
	if err != nil {
		return false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if v.Epoch != epoch {
		*v = View{ThreadID: v.ThreadID}
	}
	v.Epoch, v.Seq = epoch, seq
	v.apply(ev, a, data, seq)
	v.trim(maxBytes)
	return true, nil
}

func (v *View) apply(ev event.Event, a event.Attribution, data []byte, seq uint64) {
	switch e := ev.(type) {
	case event.RunStarted:
		v.runStarted(e, data, seq)
	case event.RunFinished, event.RunError:
		v.runEnded(a.RunID, data, seq)
	case event.MessagesSnapshot:
		v.snapshot(e.Messages)
	case event.StateSnapshot:
		v.State = e.Snapshot
	case event.StateDelta:
		v.State = patch(v.State, e.Delta, "{}")
	default:
		v.applyMessage(ev)
		v.applyMetadata(ev)
		v.applyOpen(ev)
	}
}

// applyMetadata merges an event's metadata into what it is about, key by key, as the client
// does: a text or reasoning message's events' into the message, a tool call's into the call, a
// result's and an activity's into their message.
func (v *View) applyMetadata(ev event.Event) {
	var md json.RawMessage
	var msgID, callID string
	switch e := ev.(type) {
	case event.TextMessageStart:
		md, msgID = e.Metadata, e.MessageID
	case event.TextMessageContent:
		md, msgID = e.Metadata, e.MessageID
	case event.TextMessageEnd:
		md, msgID = e.Metadata, e.MessageID
	case event.ReasoningMessageStart:
		md, msgID = e.Metadata, e.MessageID
	case event.ReasoningMessageContent:
		md, msgID = e.Metadata, e.MessageID
	case event.ReasoningMessageEnd:
		md, msgID = e.Metadata, e.MessageID
	case event.ToolCallResult:
		md, msgID = e.Metadata, e.MessageID
	case event.ActivitySnapshot:
		md, msgID = e.Metadata, e.MessageID
	case event.ActivityDelta:
		md, msgID = e.Metadata, e.MessageID
	case event.ToolCallStart:
		md, callID = e.Metadata, e.ToolCallID
	case event.ToolCallArgs:
		md, callID = e.Metadata, e.ToolCallID
	case event.ToolCallEnd:
		md, callID = e.Metadata, e.ToolCallID
	}
	if md == nil {
		return
	}
	if callID != "" {
		if i, j := v.holder(callID); i >= 0 {
			c := &v.Messages[i].ToolCalls[j]
			c.Metadata = mergeMetadata(c.Metadata, md)
		}
		return
	}
	activityEvent := ev.EventType() == "ACTIVITY_SNAPSHOT" || ev.EventType() == "ACTIVITY_DELTA"
	if i := v.find(msgID); i >= 0 && (v.Messages[i].Role == "activity") == activityEvent {
		v.Messages[i].Metadata = mergeMetadata(v.Messages[i].Metadata, md)
	}
}

// mergeMetadata is @ag-ui/core's mergeMetadata: incoming's keys over existing's.
func mergeMetadata(existing, incoming json.RawMessage) json.RawMessage {
	var a, b map[string]json.RawMessage
	if json.Unmarshal(incoming, &b) != nil {
		return existing
	}
	if json.Unmarshal(existing, &a) != nil || a == nil {
		a = map[string]json.RawMessage{}
	}
	maps.Copy(a, b)
	out, err := json.Marshal(a)
	if err != nil {
		return existing
	}
	return out
}

func (v *View) runStarted(e event.RunStarted, data []byte, seq uint64) {
	v.Runs = append(v.Runs, Span{ID: e.RunID, Start: seq})
	if len(v.Runs) > maxRuns {
		v.Runs = slices.Delete(v.Runs, 0, len(v.Runs)-maxRuns)
	}
	if e.Input != nil {
		// After messages were left out, only those after the last one the view holds are new:
		// the ones left out are not brought back (at the end).
		from := 0
		if v.Omitted > 0 {
			for i, raw := range e.Input.Messages {
				var m event.Message
				if json.Unmarshal(raw, &m) == nil && v.find(m.ID) >= 0 {
					from = i + 1
				}
			}
		}
		for _, raw := range e.Input.Messages[from:] {
			var m event.Message
			if json.Unmarshal(raw, &m) == nil && v.find(m.ID) < 0 {
				v.Messages = append(v.Messages, m)
			}
		}
		// The prelude's RUN_STARTED need not carry the input again: its messages are in the
		// snapshot, and it could be as large as a run request.
		e.Input = nil
		if b, err := json.Marshal(e); err == nil {
			data = b
		}
	}
	v.Run = &Run{ID: e.RunID, Started: data}
}

// runEnded ends run id (its RUN_FINISHED or RUN_ERROR, data, stored at seq), unless another
// run is the one in progress.
func (v *View) runEnded(id string, data []byte, seq uint64) {
	if v.Run != nil && id != "" && v.Run.ID != id {
		return
	}
	v.Run, v.LastEnd = nil, data
	if n := len(v.Runs); n > 0 && v.Runs[n-1].End == 0 {
		v.Runs[n-1].End = seq
	}
}

// snapshot merges a MESSAGES_SNAPSHOT as the client does: the messages it names take the
// snapshot's place, the others go (but activity messages when it has none, and reasoning
// messages when it has none), and its new messages follow in its order.
func (v *View) snapshot(raws []json.RawMessage) {
	snap := make(map[string]event.Message, len(raws))
	var order []string
	activity, reasoning := false, false
	for _, raw := range raws {
		var m event.Message
		if json.Unmarshal(raw, &m) != nil {
			continue
		}
		if _, dup := snap[m.ID]; !dup {
			order = append(order, m.ID)
		}
		snap[m.ID] = m
		activity = activity || m.Role == "activity"
		reasoning = reasoning || m.Role == "reasoning"
	}
	var msgs []event.Message
	kept := map[string]bool{}
	for _, m := range v.Messages {
		if s, ok := snap[m.ID]; ok {
			msgs, kept[m.ID] = append(msgs, s), true
		} else if m.Role == "activity" && !activity || m.Role == "reasoning" && !reasoning {
			msgs, kept[m.ID] = append(msgs, m), true
		}
	}
	for _, id := range order {
		if !kept[id] {
			msgs = append(msgs, snap[id])
		}
	}
	v.Messages, v.Omitted = msgs, 0
}

// find returns the index of the message id, or -1.
func (v *View) find(id string) int {
	return slices.IndexFunc(v.Messages, func(m event.Message) bool { return m.ID == id })
}

// holder returns the index of the message that holds tool call id, and the call's index in it.
func (v *View) holder(id string) (int, int) {
	for i, m := range v.Messages {
		if j := slices.IndexFunc(m.ToolCalls, func(c event.ToolCall) bool { return c.ID == id }); j >= 0 {
			return i, j
		}
	}
	return -1, -1
}

func (v *View) applyMessage(ev event.Event) {
	switch e := ev.(type) {
	case event.TextMessageStart:
		v.startMessage(e.MessageID, cmp.Or(e.Role, "assistant"), e.Name, e.SubagentRunID)
	case event.TextMessageContent:
		v.appendContent(e.MessageID, e.Delta)
	case event.ReasoningMessageStart:
		v.startMessage(e.MessageID, "reasoning", "", e.SubagentRunID)
	case event.ReasoningMessageContent:
		v.appendContent(e.MessageID, e.Delta)
	case event.ToolCallStart:
		v.startToolCall(e)
	case event.ToolCallArgs:
		if i, j := v.holder(e.ToolCallID); i >= 0 {
			v.Messages[i].ToolCalls[j].Function.Arguments += e.Delta
		}
	case event.ToolCallResult:
		v.toolResult(e)
	case event.ActivitySnapshot:
		v.activitySnapshot(e)
	case event.ActivityDelta:
		if i := v.find(e.MessageID); i >= 0 && v.Messages[i].Role == "activity" {
			if c, ok := patched(v.Messages[i].Content, e.Patch, "{}"); ok {
				v.Messages[i].Content, v.Messages[i].ActivityType = c, e.ActivityType
			}
		}
	case event.ReasoningEncryptedValue:
		v.encrypted(e)
	}
}

func (v *View) startMessage(id, role, name, subagent string) {
	if v.find(id) >= 0 {
		return // reused, as the client does
	}
	v.Messages = append(v.Messages, event.Message{ID: id, Role: role, Content: json.RawMessage(`""`), Name: name, SubagentRunID: subagent})
}

// appendContent appends delta to the content of message id, which a content that is not a
// string restarts, as the client does. The content stays JSON: delta is appended in place.
func (v *View) appendContent(id, delta string) {
	i := v.find(id)
	if i < 0 || v.Messages[i].Role == "activity" {
		return
	}
	c := v.Messages[i].Content
	if len(c) < 2 || c[0] != '"' {
		c = json.RawMessage(`""`)
	}
	esc, _ := json.Marshal(delta)
	v.Messages[i].Content = append(c[:len(c)-1], esc[1:]...)
}

func (v *View) startToolCall(e event.ToolCallStart) {
	if i, j := v.holder(e.ToolCallID); i >= 0 {
		v.Messages[i].ToolCalls[j].Function.Name = e.ToolCallName
		return
	}
	i := -1
	if e.ParentMessageID != "" {
		i = v.find(e.ParentMessageID)
	}
	if i < 0 || v.Messages[i].Role != "assistant" {
		id := e.ToolCallID
		if e.ParentMessageID != "" && i < 0 {
			id = e.ParentMessageID
		}
		v.Messages = append(v.Messages, event.Message{ID: id, Role: "assistant", SubagentRunID: e.SubagentRunID})
		i = len(v.Messages) - 1
	}
	call := event.ToolCall{ID: e.ToolCallID, Type: "function", Function: event.FunctionCall{Name: e.ToolCallName}}
	v.Messages[i].ToolCalls = append(v.Messages[i].ToolCalls, call)
}

func (v *View) toolResult(e event.ToolCallResult) {
	m := event.Message{ID: e.MessageID, ToolCallID: e.ToolCallID, Role: cmp.Or(e.Role, "tool"), Content: e.Content, SubagentRunID: e.SubagentRunID}
	i := slices.IndexFunc(v.Messages, func(m event.Message) bool {
		return m.Role == "assistant" && slices.ContainsFunc(m.ToolCalls, func(c event.ToolCall) bool { return c.ID == e.ToolCallID })
	})
	if i < 0 {
		v.Messages = append(v.Messages, m)
		return
	}
	at := i + 1
	for at < len(v.Messages) && v.Messages[at].Role == "tool" {
		at++
	}
	v.Messages = slices.Insert(v.Messages, at, m)
}

func (v *View) activitySnapshot(e event.ActivitySnapshot) {
	m := event.Message{ID: e.MessageID, Role: "activity", ActivityType: e.ActivityType, Content: e.Content, SubagentRunID: e.SubagentRunID}
	i := v.find(e.MessageID)
	switch {
	case i < 0:
		v.Messages = append(v.Messages, m)
	case e.Replace != nil && !*e.Replace:
	case v.Messages[i].Role == "activity":
		m.Metadata = v.Messages[i].Metadata // kept, as the client keeps the activity's other fields
		v.Messages[i] = m
	default:
		v.Messages[i] = m
	}
}

func (v *View) encrypted(e event.ReasoningEncryptedValue) {
	if e.Subtype == "tool-call" {
		if i, j := v.holder(e.EntityID); i >= 0 && v.Messages[i].Role == "assistant" {
			v.Messages[i].ToolCalls[j].EncryptedValue = e.EncryptedValue
		}
		return
	}
	if i := v.find(e.EntityID); i >= 0 && v.Messages[i].Role != "activity" {
		v.Messages[i].EncryptedValue = e.EncryptedValue
	}
}

// applyOpen follows what opens and closes within the run in progress.
func (v *View) applyOpen(ev event.Event) {
	if v.Run == nil {
		return
	}
	o := &v.Run.Open
	switch e := ev.(type) {
	case event.StepStarted:
		o.Steps = append(o.Steps, Item{ID: e.StepName, Subagent: e.SubagentRunID})
	case event.StepFinished:
		o.Steps = without(o.Steps, e.StepName)
	case event.TextMessageStart:
		o.Text = append(o.Text, Item{ID: e.MessageID, Role: e.Role, Name: e.Name, Subagent: e.SubagentRunID})
	case event.TextMessageEnd:
		o.Text = without(o.Text, e.MessageID)
	case event.ToolCallStart:
		o.Tools = append(o.Tools, Item{ID: e.ToolCallID, Name: e.ToolCallName, Parent: e.ParentMessageID, Subagent: e.SubagentRunID})
	case event.ToolCallEnd:
		o.Tools = without(o.Tools, e.ToolCallID)
	case event.ReasoningStart:
		o.Spans = append(o.Spans, Item{ID: e.MessageID, Subagent: e.SubagentRunID})
	case event.ReasoningEnd:
		o.Spans = without(o.Spans, e.MessageID)
	case event.ReasoningMessageStart:
		o.Reasoning = append(o.Reasoning, Item{ID: e.MessageID, Subagent: e.SubagentRunID})
	case event.ReasoningMessageEnd:
		o.Reasoning = without(o.Reasoning, e.MessageID)
	}
}

func without(items []Item, id string) []Item {
	return slices.DeleteFunc(items, func(it Item) bool { return it.ID == id })
}

// patch applies ops to doc (empty: empty, a JSON value) and returns the result, or doc as it
// was if the patch fails, as the client leaves it.
func patch(doc json.RawMessage, ops []event.PatchOperation, empty string) json.RawMessage {
	out, _ := patched(doc, ops, empty)
	return out
}

// patched is patch, reporting whether the patch applied.
func patched(doc json.RawMessage, ops []event.PatchOperation, empty string) (json.RawMessage, bool) {
	p, err := json.Marshal(ops)
	if err != nil {
		return doc, false
	}
	decoded, err := jsonpatch.DecodePatch(p)
	if err != nil {
		return doc, false
	}
	src := doc
	if len(src) == 0 {
		src = json.RawMessage(empty)
	}
	opts := jsonpatch.NewApplyOptions()
	opts.SupportNegativeIndices = false // as fast-json-patch, which the client uses
	out, err := decoded.ApplyWithOptions(src, opts)
	if err != nil {
		return doc, false
	}
	return out, true
}

// trim leaves out the oldest messages that are not open until v's JSON fits maxBytes; then
// the state; then, as a last resort, the messages being written (a client that joins then
// gets their rest only). It marshals v only when a cheap upper bound says it may not fit, and
// then each message once: the messages to leave out are chosen in one pass.
func (v *View) trim(maxBytes int) {
	if v.sizeBound() <= maxBytes {
		return
	}
	for pass := 0; pass < 3; pass++ {
		b, err := json.Marshal(v)
		if err != nil || len(b) <= maxBytes {
			return
		}
		over := len(b) - maxBytes
		switch pass {
		case 0: // the oldest closed messages
			v.drop(over, func(m event.Message) bool { return !v.open(m) })
		case 1: // the state
			v.State = nil
		case 2: // the messages being written
			v.drop(over, func(event.Message) bool { return true })
		}
	}
}

// drop leaves out the oldest messages that may go, until they amount to over bytes of JSON.
func (v *View) drop(over int, may func(event.Message) bool) {
	kept := v.Messages[:0]
	for _, m := range v.Messages {
		if over > 0 && may(m) {
			b, _ := json.Marshal(m)
			over -= len(b) + 1
			v.Omitted++
			continue
		}
		kept = append(kept, m)
	}
	clear(v.Messages[len(kept):])
	v.Messages = kept
}

// sizeBound is an upper bound of v's JSON: what its contents take, six bytes for each byte
// (JSON escapes a character in up to six), with room for the keys and punctuation around them.
func (v *View) sizeBound() int {
	const perItem = 512
	n := len(v.State) + len(v.LastEnd) + perItem*(len(v.Runs)+1)
	if v.Run != nil {
		o := v.Run.Open
		n += len(v.Run.Started) + len(v.Run.ID) + perItem*(len(o.Steps)+len(o.Text)+len(o.Tools)+len(o.Spans)+len(o.Reasoning))
		for _, items := range [][]Item{o.Steps, o.Text, o.Tools, o.Spans, o.Reasoning} {
			for _, it := range items {
				n += len(it.ID) + len(it.Name) + len(it.Role) + len(it.Parent) + len(it.Subagent)
			}
		}
	}
	for _, m := range v.Messages {
		n += perItem + len(m.Content) + len(m.Metadata) + len(m.ID) + len(m.Name) + len(m.ToolCallID) +
			len(m.Error) + len(m.EncryptedValue) + len(m.ActivityType) + len(m.SubagentRunID) + len(m.Role)
		for _, c := range m.ToolCalls {
			n += perItem + len(c.Metadata) + len(c.ID) + len(c.Function.Name) + len(c.Function.Arguments) + len(c.EncryptedValue)
		}
	}
	return 6 * n
}

// open reports whether message m is being written by the run in progress: its text, its
// reasoning or one of its tool calls is open.
func (v *View) open(m event.Message) bool {
	if v.Run == nil {
		return false
	}
	has := func(items []Item, id string) bool {
		return slices.ContainsFunc(items, func(it Item) bool { return it.ID == id })
	}
	o := v.Run.Open
	return has(o.Text, m.ID) || has(o.Reasoning, m.ID) ||
		slices.ContainsFunc(m.ToolCalls, func(c event.ToolCall) bool { return has(o.Tools, c.ID) })
}

// Key is the bucket key of the view of thread threadID of the user of token tok: the token and
// a hash of the id, which may hold any character.
func Key(tok, threadID string) string {
	h := sha256.Sum256([]byte(threadID))
	return tok + "." + hex.EncodeToString(h[:16])
}
