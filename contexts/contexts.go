// Package contexts keeps a user's view of their contexts (conversations, tasks) from the
// events that name them, for the CONTEXTS_SNAPSHOT a new contexts stream starts with. It is
// pure: bus stores the views and feeds the events.
//
// The rules, applied in stream order, with the time each event was stored:
//   - CONTEXT_CREATED adds the context (or renames it if known); CONTEXT_UPDATED renames it if
//     it carries a name; CONTEXT_DELETED removes it.
//   - AG-UI RUN_STARTED and RUN_FINISHED name a context by threadId; A2A TASK_SUBMITTED,
//     TASK_STATUS_UPDATE, ARTIFACT_CREATED, AGENT_MESSAGE, INPUT_REQUIRED and AUTH_REQUIRED by
//     contextId. A context first seen this way is added with its id as its name.
//   - Every event that names a context sets its updated_at; created_at is when it was first seen.
//   - task_count counts TASK_SUBMITTED events, message_count AGENT_MESSAGE events: the only
//     counts the events state without guessing (AG-UI text messages carry no threadId).
package contexts

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// relevant lists, per protocol, the event types that can change a view.
var relevant = map[string][]string{
	"system": {"CONTEXT_CREATED", "CONTEXT_UPDATED", "CONTEXT_DELETED"},
	"agui":   {"RUN_STARTED", "RUN_FINISHED"},
	"a2a":    {"TASK_SUBMITTED", "TASK_STATUS_UPDATE", "ARTIFACT_CREATED", "AGENT_MESSAGE", "INPUT_REQUIRED", "AUTH_REQUIRED"},
}

// Filters are the CONTEXT stream subjects of every event that can change a view, any user.
func Filters() []string {
	var f []string
	for _, p := range []string{"system", "agui", "a2a"} {
		for _, t := range relevant[p] {
			f = append(f, "context."+p+".*."+t)
		}
	}
	return f
}

// split returns the protocol, user token and type of a CONTEXT stream subject.
func split(subject string) (protocol, user, typ string, ok bool) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != "context" {
		return "", "", "", false
	}
	return parts[1], parts[2], parts[3], true
}

// Relevant reports whether an event on a CONTEXT stream subject can change a view.
func Relevant(subject string) bool {
	p, _, t, ok := split(subject)
	return ok && slices.Contains(relevant[p], t)
}

// UserToken returns the user token of a CONTEXT stream subject.
func UserToken(subject string) (string, bool) {
	_, u, _, ok := split(subject)
	return u, ok
}

// Key returns the key-value key of a user's view: "u." and the user token, with the token's
// "~" (not allowed in keys) written as "=", which plain tokens never hold.
func Key(user string) (string, error) {
	tok, err := routing.UserToken(user)
	if err != nil {
		return "", err
	}
	return KeyOfToken(tok), nil
}

// KeyOfToken is Key for a user token taken from a subject.
func KeyOfToken(tok string) string {
	return "u." + strings.Replace(tok, "~", "=", 1)
}

// View is one user's contexts.
type View struct {
	// Seq is the CONTEXT stream sequence of the last event applied.
	Seq      uint64                           `json:"seq"`
	Contexts map[string]*event.ContextSummary `json:"contexts"`
}

// Apply applies one stored event and reports whether the view changed. Events at or before
// v.Seq were applied already and are ignored, so applying a stream twice changes nothing.
func (v *View) Apply(subject string, data []byte, seq uint64, stored time.Time) bool {
	if seq <= v.Seq || !Relevant(subject) {
		return false
	}
	p, _, typ, _ := split(subject)
	var f struct {
		ContextID string  `json:"contextId"`
		ThreadID  string  `json:"threadId"`
		Name      *string `json:"name"`
	}
	if json.Unmarshal(data, &f) != nil {
		return false
	}
	id := f.ContextID
	if p == "agui" {
		id = f.ThreadID
	}
	if id == "" {
		return false
	}
	v.Seq = seq
	if v.Contexts == nil {
		v.Contexts = map[string]*event.ContextSummary{}
	}
	if typ == "CONTEXT_DELETED" {
		delete(v.Contexts, id)
		return true
	}
	stored = stored.UTC()
	c := v.Contexts[id]
	if c == nil {
		c = &event.ContextSummary{ContextID: id, Name: id, CreatedAt: stored}
		v.Contexts[id] = c
	}
	c.UpdatedAt = stored
	switch typ {
	case "CONTEXT_CREATED", "CONTEXT_UPDATED":
		if f.Name != nil {
			c.Name = *f.Name
		}
	case "TASK_SUBMITTED":
		c.TaskCount++
	case "AGENT_MESSAGE":
		c.MessageCount++
	}
	return true
}

// Snapshot returns the CONTEXTS_SNAPSHOT event of the view, the most recently updated first.
func (v *View) Snapshot(now time.Time) event.ContextsSnapshot {
	list := make([]event.ContextSummary, 0, len(v.Contexts))
	for _, c := range v.Contexts {
		list = append(list, *c)
	}
	slices.SortFunc(list, func(a, b event.ContextSummary) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ContextID, b.ContextID)
	})
	return event.ContextsSnapshot{Timestamp: now.UTC(), Contexts: list}
}
