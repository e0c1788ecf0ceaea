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
//
// A view is bounded, so that no user can make it too large to store or too slow to rewrite:
// names are cut to MaxNameBytes, an event naming a context by an id longer than MaxIDBytes is
// not applied, and a view keeps at most MaxContexts contexts in at most MaxViewBytes (256 KiB)
// of JSON (or less: ApplyWithin, for a server whose payload limit is smaller), dropping the
// least recently updated first. Every node that applies the same events within the same bound
// computes the same view, however it groups them: a view is trimmed after every event.
//
// A view records the life (epoch) of the CONTEXT stream it was built from. A view stored by an
// earlier release records none; Stamp tells from when it was stored which life it belongs to.
package contexts

import (
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// The bounds of a view.
const (
	// MaxNameBytes is the longest context name kept, in bytes of UTF-8; a longer name is cut at
	// the last whole character that fits.
	MaxNameBytes = 256
	// MaxIDBytes is the longest context id (threadId, contextId) accepted; an event naming a
	// longer one is not applied (ErrIDTooLong).
	MaxIDBytes = 256
	// MaxContexts is how many contexts a view keeps; past it the least recently updated are
	// dropped (of those updated at the same time, the greatest id first).
	MaxContexts = 500
	// MaxViewBytes bounds a view's JSON, well under NATS's default 1 MiB payload limit: past it
	// the least recently updated contexts are dropped until it fits. JSON escapes a control
	// character as six bytes, so MaxContexts contexts of the longest ids and names could
	// otherwise take several MiB. It is what one user can make the projector read and write
	// for every batch of their events, and what one user id can take in the CONTEXTS bucket;
	// MaxContexts contexts with 36-byte ids and names of up to about 250 bytes fit whole.
	MaxViewBytes = 256 << 10
)

// Errors Apply returns for an event that it can never apply.
var (
	// ErrMalformed is returned for an event whose data is not a JSON object.
	ErrMalformed = errors.New("contexts: event is not a JSON object")
	// ErrIDTooLong is returned for an event naming a context by an id longer than MaxIDBytes.
	ErrIDTooLong = errors.New("contexts: context id too long")
)

// relevant lists, per protocol, the event types that can change a view.
var relevant = map[string][]string{
	"system": {"CONTEXT_CREATED", "CONTEXT_UPDATED", "CONTEXT_DELETED"},
	"agui":   {"RUN_STARTED", "RUN_FINISHED"},
	"a2a":    {"TASK_SUBMITTED", "TASK_STATUS_UPDATE", "ARTIFACT_CREATED", "AGENT_MESSAGE", "INPUT_REQUIRED", "AUTH_REQUIRED"},
}

// Filters are the CONTEXT stream subjects of every event that can change a view, any user.
func Filters() []string {
	return FiltersOf("*")
}

// FiltersOf are the CONTEXT stream subjects of every event that can change the view of the
// user of token tok (a user token taken from a subject).
func FiltersOf(tok string) []string {
	var f []string
	for _, p := range []string{"system", "agui", "a2a"} {
		for _, t := range relevant[p] {
			f = append(f, "context."+p+"."+tok+"."+t)
		}
	}
	return f
}

// split returns the protocol, user token and type of a CONTEXT stream subject
// (routing.ParseSubject decides what one is).
func split(subject string) (protocol, user, typ string, ok bool) {
	s, err := routing.ParseSubject(subject)
	if err != nil || !s.Fanned && s.Channel != routing.System {
		return "", "", "", false
	}
	return string(s.Channel), s.Token, s.Type, true
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

// View is one user's contexts, as of one life of the CONTEXT stream.
type View struct {
	// Epoch identifies the life of the CONTEXT stream the view was built from (its creation
	// time in Unix nanoseconds, as in a cursor). Sequences restart when the stream is
	// recreated, so a view of another epoch says nothing about the stream as it is: it counts
	// as empty. A view stored before views recorded it has none (0) until Stamp gives it one.
	Epoch uint64 `json:"epoch,omitempty"`
	// Seq is the CONTEXT stream sequence of the last event applied.
	Seq      uint64                           `json:"seq"`
	Contexts map[string]*event.ContextSummary `json:"contexts"`
}

// Of reports whether the view was built from the CONTEXT stream of epoch, and so reflects
// every event of its user up to Seq. An empty view (Seq 0) is of every epoch; a view stored
// without an epoch is of none until Stamp gives it one.
func (v *View) Of(epoch uint64) bool {
	return v.Epoch == epoch || v.Epoch == 0 && v.Seq == 0
}

// Stamp gives a view read from the bucket, stored at stored, the epoch of the CONTEXT stream
// it was built from if it records none (an earlier release wrote it). The stream that
// was there when it was stored built it: if the stream of epoch was created by then, the view
// is of epoch; if not, it was built from an earlier life of the stream, whose sequences say
// nothing about this one, and it is emptied. So a view that an upgrade left without an epoch
// is kept while its stream lives, and counts as empty once the stream is recreated, however
// large its Seq.
func (v *View) Stamp(epoch uint64, stored time.Time) {
	if v.Epoch != 0 || v.Seq == 0 {
		return
	}
	if stored.UnixNano() >= int64(epoch) {
		v.Epoch = epoch
		return
	}
	*v = View{}
}

// Apply applies one event, stored at seq in the CONTEXT stream of epoch, and reports whether
// the view changed. Events at or before v.Seq were applied already and are ignored, so
// applying a stream twice changes nothing. An event of a newer epoch than the view's starts
// the view again from nothing, as does any event for a view stored without an epoch that
// Stamp did not stamp; one of an older epoch (from a node that has not yet seen the stream
// recreated) is ignored. It returns ErrMalformed or ErrIDTooLong, and leaves the view
// as it was, for an event it can never apply. The view is trimmed to MaxContexts and
// MaxViewBytes after the event.
func (v *View) Apply(epoch uint64, subject string, data []byte, seq uint64, stored time.Time) (bool, error) {
	return v.ApplyWithin(MaxViewBytes, epoch, subject, data, seq, stored)
}

// ApplyWithin is Apply for a view that must take at most maxBytes of JSON (a server's payload
// limit below MaxViewBytes): after the event the view is trimmed to MaxContexts and the lesser
// of maxBytes and MaxViewBytes. Trimming after every event, not once for a group of them,
// makes the view the same however the events are grouped.
func (v *View) ApplyWithin(maxBytes int, epoch uint64, subject string, data []byte, seq uint64, stored time.Time) (bool, error) {
	if !v.Of(epoch) {
		if epoch < v.Epoch {
			return false, nil
		}
		*v = View{Epoch: epoch}
	}
	if seq <= v.Seq || !Relevant(subject) {
		return false, nil
	}
	p, _, typ, _ := split(subject)
	var f struct {
		ContextID string  `json:"contextId"`
		ThreadID  string  `json:"threadId"`
		Name      *string `json:"name"`
	}
	if json.Unmarshal(data, &f) != nil {
		return false, ErrMalformed
	}
	id := f.ContextID
	if p == "agui" {
		id = f.ThreadID
	}
	if id == "" {
		return false, nil
	}
	if len(id) > MaxIDBytes {
		return false, ErrIDTooLong
	}
	v.Epoch, v.Seq = epoch, seq
	if v.Contexts == nil {
		v.Contexts = map[string]*event.ContextSummary{}
	}
	if typ == "CONTEXT_DELETED" {
		delete(v.Contexts, id)
		// Its sequence may take a digit more than the last one's.
		v.Trim(MaxContexts, min(maxBytes, MaxViewBytes))
		return true, nil
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
			c.Name = truncate(*f.Name, MaxNameBytes)
		}
	case "TASK_SUBMITTED":
		c.TaskCount++
	case "AGENT_MESSAGE":
		c.MessageCount++
	}
	v.Trim(MaxContexts, min(maxBytes, MaxViewBytes))
	return true, nil
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Trim drops the least recently updated contexts (of those updated at the same time, the
// greatest id first: the end of the snapshot's order) until the view holds at most
// maxContexts and its JSON takes at most maxBytes. It reports how many it dropped.
func (v *View) Trim(maxContexts, maxBytes int) int {
	list := v.ordered()
	dropped := 0
	for len(list) > maxContexts {
		delete(v.Contexts, list[len(list)-1].ContextID)
		list = list[:len(list)-1]
		dropped++
	}
	if v.sizeBound(list) <= maxBytes {
		return dropped // the usual case, without encoding every context
	}
	size := v.size(list)
	for size > maxBytes && len(list) > 0 {
		last := list[len(list)-1]
		size -= entrySize(last)
		if len(list) > 1 {
			size-- // the comma between two entries
		}
		delete(v.Contexts, last.ContextID)
		list = list[:len(list)-1]
		dropped++
	}
	return dropped
}

// size is the length of the view's JSON, list being its contexts.
func (v *View) size(list []*event.ContextSummary) int {
	empty, _ := json.Marshal(View{Epoch: v.Epoch, Seq: v.Seq, Contexts: map[string]*event.ContextSummary{}})
	n := len(empty)
	for _, c := range list {
		n += entrySize(c)
	}
	if len(list) > 1 {
		n += len(list) - 1
	}
	return n
}

// sizeBound is at least v.size(list), from lengths alone.
func (v *View) sizeBound(list []*event.ContextSummary) int {
	n := 64 // {"epoch":N,"seq":N,"contexts":{}}
	for _, c := range list {
		// The id twice and the name, each escaped at worst as 6 bytes a byte, quoted; the
		// field names, the two times and the two counts in well under 256 bytes; a comma.
		n += 2*(6*len(c.ContextID)+2) + 6*len(c.Name) + 2 + 256 + 1
	}
	return n
}

// entrySize is the length of `"<id>":{...}` in a view's JSON, counted as encoding/json writes
// it without encoding it: a hostile view is trimmed on every event, and encoding each of its
// contexts every time would cost milliseconds.
func entrySize(c *event.ContextSummary) int {
	var buf [64]byte
	n := len(`"":{"context_id":"","name":"","created_at":,"updated_at":,"message_count":,"task_count":}`)
	n += 2*quotedLen(c.ContextID) + quotedLen(c.Name)
	n += len(c.CreatedAt.AppendFormat(buf[:0], time.RFC3339Nano)) + 2
	n += len(c.UpdatedAt.AppendFormat(buf[:0], time.RFC3339Nano)) + 2
	n += len(strconv.AppendInt(buf[:0], c.MessageCount, 10)) + len(strconv.AppendInt(buf[:0], c.TaskCount, 10))
	return n
}

// quotedLen is the length of s in JSON as encoding/json writes it, without the quotes: it
// escapes control characters, quotes and backslashes, <, > and &, U+2028 and U+2029, and writes
// each invalid byte as \ufffd.
func quotedLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			switch {
			case b == '"' || b == '\\' || b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t':
				n += 2
			case b < 0x20 || b == '<' || b == '>' || b == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1, r == '\u2028', r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// ordered lists the view's contexts in the snapshot's order: the most recently updated
// first, then by id.
func (v *View) ordered() []*event.ContextSummary {
	list := make([]*event.ContextSummary, 0, len(v.Contexts))
	for _, c := range v.Contexts {
		list = append(list, c)
	}
	slices.SortFunc(list, func(a, b *event.ContextSummary) int {
		if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ContextID, b.ContextID)
	})
	return list
}

// Snapshot returns the CONTEXTS_SNAPSHOT event of the view, the most recently updated first.
func (v *View) Snapshot(now time.Time) event.ContextsSnapshot {
	ordered := v.ordered()
	list := make([]event.ContextSummary, 0, len(ordered))
	for _, c := range ordered {
		list = append(list, *c)
	}
	return event.ContextsSnapshot{Timestamp: now.UTC(), Contexts: list}
}
