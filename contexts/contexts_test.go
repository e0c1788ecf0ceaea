package contexts

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/event"
)

var t0 = time.Date(2026, 4, 20, 10, 0, 0, 0, time.UTC)

func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func TestApply(t *testing.T) {
	var v View
	steps := []struct {
		subject, data string
		seq           uint64
		changed       bool
		err           error
	}{
		{"context.system.alice.CONTEXT_CREATED", `{"contextId":"c1","name":"First"}`, 1, true, nil},
		{"context.agui.alice.RUN_STARTED", `{"threadId":"c2","runId":"r"}`, 2, true, nil},
		{"context.agui.alice.TEXT_MESSAGE_START", `{"messageId":"m"}`, 3, false, nil},
		{"context.a2a.alice.TASK_SUBMITTED", `{"taskId":"t","contextId":"c1","agentName":"a"}`, 4, true, nil},
		{"context.a2a.alice.AGENT_MESSAGE", `{"taskId":"t","contextId":"c1","messageId":"m","content":"x"}`, 5, true, nil},
		{"context.a2a.alice.AGENT_MESSAGE", `{"taskId":"t","contextId":"c1","messageId":"m","content":"x"}`, 5, false, nil}, // applied already
		{"context.system.alice.CONTEXT_UPDATED", `{"contextId":"c2","name":"Second"}`, 6, true, nil},
		{"context.system.alice.CONTEXT_CREATED", `{"contextId":"c3","name":"Third"}`, 7, true, nil},
		{"context.system.alice.CONTEXT_DELETED", `{"contextId":"c3"}`, 8, true, nil},
		{"context.system.alice.CONTEXT_UPDATED", `not json`, 9, false, ErrMalformed},
	}
	for i, s := range steps {
		if got, err := v.Apply(1, s.subject, []byte(s.data), s.seq, at(i)); got != s.changed || !errors.Is(err, s.err) {
			t.Errorf("step %d: Apply(%s) = %v, %v, want %v, %v", i, s.subject, got, err, s.changed, s.err)
		}
	}
	snap, _ := json.Marshal(v.Snapshot(at(60)))
	want := `{"type":"CONTEXTS_SNAPSHOT","timestamp":"2026-04-20T11:00:00Z","contexts":[` +
		`{"context_id":"c2","name":"Second","created_at":"2026-04-20T10:01:00Z","updated_at":"2026-04-20T10:06:00Z","message_count":0,"task_count":0},` +
		`{"context_id":"c1","name":"First","created_at":"2026-04-20T10:00:00Z","updated_at":"2026-04-20T10:04:00Z","message_count":1,"task_count":1}]}`
	if string(snap) != want {
		t.Fatalf("snapshot =\n%s\nwant\n%s", snap, want)
	}
	if v.Seq != 8 {
		t.Errorf("Seq = %d, want 8", v.Seq)
	}
}

// TestApplyBounds: what one event can put in a view.
func TestApplyBounds(t *testing.T) {
	created := "context.system.alice.CONTEXT_CREATED"
	event := func(id, name string) string {
		b, _ := json.Marshal(map[string]string{"contextId": id, "name": name})
		return string(b)
	}
	cases := []struct {
		name     string
		subject  string
		data     string
		changed  bool
		err      error
		wantName string // of context "c", when changed
	}{
		{"short name", created, event("c", "hello"), true, nil, "hello"},
		{"name at the limit", created, event("c", strings.Repeat("a", MaxNameBytes)), true, nil, strings.Repeat("a", MaxNameBytes)},
		{"long name is cut", created, event("c", strings.Repeat("a", 200_000)), true, nil, strings.Repeat("a", MaxNameBytes)},
		// 85 three-byte characters fill 255 bytes; the 86th would split at byte 256.
		{"cut at a character boundary", created, event("c", strings.Repeat("€", 100)), true, nil, strings.Repeat("€", 85)},
		{"control characters", created, event("c", strings.Repeat("\x01", 300)), true, nil, strings.Repeat("\x01", MaxNameBytes)},
		{"id at the limit", created, event(strings.Repeat("i", MaxIDBytes), "x"), true, nil, ""},
		{"id too long", created, event(strings.Repeat("i", MaxIDBytes+1), "x"), false, ErrIDTooLong, ""},
		{"thread id too long", "context.agui.alice.RUN_STARTED", `{"threadId":"` + strings.Repeat("t", MaxIDBytes+1) + `"}`, false, ErrIDTooLong, ""},
		{"not an object", created, `[1,2]`, false, ErrMalformed, ""},
		{"not json", created, `{"contextId":`, false, ErrMalformed, ""},
		{"no id", created, `{"name":"x"}`, false, nil, ""},
		{"irrelevant type, not json", "context.agui.alice.TEXT_MESSAGE_CONTENT", `nope`, false, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v View
			changed, err := v.Apply(7, c.subject, []byte(c.data), 1, t0)
			if changed != c.changed || !errors.Is(err, c.err) {
				t.Fatalf("Apply(%.60s) = %v, %v, want %v, %v", c.data, changed, err, c.changed, c.err)
			}
			if !changed {
				if v.Seq != 0 || len(v.Contexts) != 0 {
					t.Fatalf("an event not applied changed the view: %+v", v)
				}
				return
			}
			if c.wantName != "" {
				if got := v.Contexts["c"].Name; got != c.wantName {
					t.Fatalf("name = %q (%d bytes), want %d bytes", got, len(got), len(c.wantName))
				}
			}
			if v.Epoch != 7 || v.Seq != 1 {
				t.Fatalf("view at epoch %d, seq %d, want 7, 1", v.Epoch, v.Seq)
			}
		})
	}
}

// TestMaxContexts: past MaxContexts, the least recently updated contexts are dropped; of those
// updated at the same time, the greatest id goes first.
func TestMaxContexts(t *testing.T) {
	var v View
	seq := uint64(0)
	apply := func(id string, when time.Time) {
		t.Helper()
		seq++
		if _, err := v.Apply(1, "context.system.alice.CONTEXT_CREATED", []byte(`{"contextId":"`+id+`"}`), seq, when); err != nil {
			t.Fatal(err)
		}
	}
	for i := range MaxContexts {
		apply(fmt.Sprintf("c%03d", i), at(i))
	}
	apply("c000", at(MaxContexts)) // touched: now the most recent
	apply("new", at(MaxContexts+1))
	if len(v.Contexts) != MaxContexts {
		t.Fatalf("%d contexts, want %d", len(v.Contexts), MaxContexts)
	}
	for id, want := range map[string]bool{"c000": true, "c001": false, "c002": true, "new": true} {
		if _, ok := v.Contexts[id]; ok != want {
			t.Errorf("context %s kept = %v, want %v", id, ok, want)
		}
	}
	// Two updated at the same time, the oldest: the greatest id is dropped first.
	apply("a-tie", at(2))
	if _, ok := v.Contexts["c002"]; ok {
		t.Errorf("c002 kept over a-tie, updated at the same time with a smaller id")
	}
	if _, ok := v.Contexts["a-tie"]; !ok {
		t.Errorf("a-tie dropped, want c002 dropped first")
	}
}

// TestViewBytes: a view of the longest ids and names of control characters (escaped as six
// bytes each) stays within MaxViewBytes, keeping the most recently updated, and Trim's count
// of the JSON's size is exact.
func TestViewBytes(t *testing.T) {
	var v View
	name := strings.Repeat("\x01", 300)
	for i := range MaxContexts {
		id := fmt.Sprintf("%03d", i) + strings.Repeat("\x02", MaxIDBytes-3)
		data, _ := json.Marshal(map[string]string{"contextId": id, "name": name})
		if _, err := v.Apply(1, "context.system.alice.CONTEXT_CREATED", data, uint64(i+1), at(i)); err != nil {
			t.Fatal(err)
		}
		if i%50 != 49 {
			continue
		}
		value, _ := json.Marshal(&v)
		if len(value) > MaxViewBytes {
			t.Fatalf("after %d contexts the view takes %d bytes, over %d", i+1, len(value), MaxViewBytes)
		}
		if got := v.size(v.ordered()); got != len(value) {
			t.Fatalf("size() = %d, want %d", got, len(value))
		}
	}
	if len(v.Contexts) == MaxContexts {
		t.Fatalf("all %d contexts kept", MaxContexts)
	}
	newest := fmt.Sprintf("%03d", MaxContexts-1) + strings.Repeat("\x02", MaxIDBytes-3)
	if _, ok := v.Contexts[newest]; !ok {
		t.Fatalf("the most recently updated context was dropped")
	}
	t.Logf("%d contexts of the longest escaped ids and names fit", len(v.Contexts))
}

// TestTrim: a view stored before the bounds existed is cut to them.
func TestTrim(t *testing.T) {
	cases := []struct {
		name                  string
		contexts              int
		maxContexts, maxBytes int
		dropped               int
	}{
		{"within bounds", 10, 10, 1 << 20, 0},
		{"too many", 12, 10, 1 << 20, 2},
		{"too large", 10, 10, 500, 7},
		{"nothing fits", 3, 10, 10, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v View
			for i := range c.contexts {
				id := fmt.Sprintf("c%02d", i)
				_, _ = v.Apply(1, "context.system.alice.CONTEXT_CREATED", []byte(`{"contextId":"`+id+`"}`), uint64(i+1), at(i))
			}
			if got := v.Trim(c.maxContexts, c.maxBytes); got != c.dropped {
				t.Fatalf("Trim(%d, %d) = %d, want %d", c.maxContexts, c.maxBytes, got, c.dropped)
			}
			value, _ := json.Marshal(&v)
			if len(v.Contexts) > 0 && len(value) > c.maxBytes {
				t.Fatalf("trimmed view takes %d bytes, over %d", len(value), c.maxBytes)
			}
			for i := c.contexts - len(v.Contexts); i < c.contexts; i++ {
				if _, ok := v.Contexts[fmt.Sprintf("c%02d", i)]; !ok {
					t.Fatalf("c%02d dropped, a more recent context than one kept", i)
				}
			}
		})
	}
}

// TestEpochs: a view of one life of the CONTEXT stream starts again with the first event of a
// newer one, and ignores events of an older one.
func TestEpochs(t *testing.T) {
	apply := func(v *View, epoch uint64, id string, seq uint64) bool {
		changed, err := v.Apply(epoch, "context.system.alice.CONTEXT_CREATED", []byte(`{"contextId":"`+id+`"}`), seq, t0)
		if err != nil {
			t.Fatal(err)
		}
		return changed
	}
	var v View
	apply(&v, 10, "old", 100)
	if !apply(&v, 20, "new", 1) {
		t.Fatal("the first event of a newer stream (at a lower sequence) was ignored")
	}
	if _, ok := v.Contexts["old"]; ok || v.Epoch != 20 || v.Seq != 1 {
		t.Fatalf("after a newer stream's first event: %+v, want only its context", v)
	}
	if apply(&v, 10, "stale", 101) {
		t.Fatal("an event of an older stream changed the view")
	}
	if v.Of(10) || !v.Of(20) {
		t.Fatalf("view of epoch %d: Of(10) = %v, Of(20) = %v", v.Epoch, v.Of(10), v.Of(20))
	}
	// A view stored without an epoch, and not stamped, is of no stream: it starts again.
	legacy := View{Seq: 5, Contexts: map[string]*event.ContextSummary{"old": {ContextID: "old"}}}
	if legacy.Of(20) || !apply(&legacy, 20, "x", 1) || legacy.Contexts["old"] != nil || legacy.Epoch != 20 {
		t.Fatalf("an unstamped view without an epoch was continued: %+v", legacy)
	}
	if empty := (View{}); !empty.Of(20) {
		t.Fatal("an empty view is not of every epoch")
	}
}

// TestStamp: a view stored without an epoch (by an earlier release) is of the CONTEXT stream
// that was there when it was stored: kept while that stream lives, empty once it is recreated.
func TestStamp(t *testing.T) {
	const epoch = uint64(1_700_000_000_000_000_000) // the stream's creation, in Unix ns
	created := time.Unix(0, int64(epoch))
	for _, tt := range []struct {
		name   string
		view   View
		stored time.Time
		want   string // the view's epoch, seq and contexts after Stamp
	}{
		{"stored after the stream was created", View{Seq: 5000, Contexts: map[string]*event.ContextSummary{"old": {}}}, created.Add(time.Second), "1700000000000000000/5000/1"},
		{"stored as the stream was created", View{Seq: 7, Contexts: map[string]*event.ContextSummary{"old": {}}}, created, "1700000000000000000/7/1"},
		{"stored before the stream was recreated", View{Seq: 5000, Contexts: map[string]*event.ContextSummary{"old": {}}}, created.Add(-time.Second), "0/0/0"},
		{"with an epoch: left alone", View{Epoch: 3, Seq: 9, Contexts: map[string]*event.ContextSummary{"c": {}}}, created.Add(-time.Second), "3/9/1"},
		{"empty: left alone", View{}, created.Add(-time.Second), "0/0/0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.view
			v.Stamp(epoch, tt.stored)
			if got := fmt.Sprintf("%d/%d/%d", v.Epoch, v.Seq, len(v.Contexts)); got != tt.want {
				t.Fatalf("Stamp(%d, %v) = %s, want %s", epoch, tt.stored, got, tt.want)
			}
			if tt.view.Epoch == 0 && !v.Of(epoch) {
				t.Fatalf("after Stamp the view is not of epoch %d: %+v", epoch, v)
			}
		})
	}
}

func TestKey(t *testing.T) {
	for user, want := range map[string]string{"alice": "u.alice", "a@b": "u.=YUBi"} {
		if got, err := Key(user); err != nil || got != want {
			t.Errorf("Key(%q) = %q, %v, want %q", user, got, err, want)
		}
	}
}

// TestQuotedLen: the view's size is counted as encoding/json writes it.
func TestQuotedLen(t *testing.T) {
	for _, s := range []string{"", "plain", `"\`, "\b\f\n\r\t\x00\x1f\x7f", "<a&b>", "€ü😀", "\u2028\u2029", "\xff\xfe", "a\xe2\x82", strings.Repeat("\x01", 300)} {
		want, _ := json.Marshal(s)
		if got := quotedLen(s); got != len(want)-2 {
			t.Errorf("quotedLen(%q) = %d, want %d", s, got, len(want)-2)
		}
	}
}

func FuzzQuotedLen(f *testing.F) {
	f.Add("a\x01<\u2028\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := quotedLen(s); got != len(want)-2 {
			t.Errorf("quotedLen(%q) = %d, want %d", s, got, len(want)-2)
		}
	})
}

// TestApplyWithinIsPerEvent: a view bounded below MaxViewBytes (a server with a smaller payload
// limit) is trimmed after every event, so that however a node groups the events it applies
// between writes, it computes the same view as one that writes after every event. Here a
// rename takes the view over the bound (dropping the least recently updated context) and the
// next event deletes the renamed one: trimmed only after both, nothing would be dropped.
func TestApplyWithinIsPerEvent(t *testing.T) {
	const epoch = 1
	name := strings.Repeat("x", 200)
	type ev struct {
		subject, data string
	}
	var events []ev
	for i := range 20 {
		events = append(events, ev{"context.system.alice.CONTEXT_CREATED", fmt.Sprintf(`{"contextId":"c%02d","name":%q}`, i, name)})
	}
	events = append(events,
		ev{"context.system.alice.CONTEXT_UPDATED", `{"contextId":"c00","name":"` + strings.Repeat("y", 250) + `"}`},
		ev{"context.system.alice.CONTEXT_DELETED", `{"contextId":"c00"}`})
	var full View
	for i, e := range events[:20] {
		if _, err := full.Apply(epoch, e.subject, []byte(e.data), uint64(i+1), at(i)); err != nil {
			t.Fatal(err)
		}
	}
	limit := full.size(full.ordered()) // the first 20 events fill the view exactly

	// Written after every event: each write trims the view to the bound.
	var each View
	for i, e := range events {
		if _, err := each.Apply(epoch, e.subject, []byte(e.data), uint64(i+1), at(i)); err != nil {
			t.Fatal(err)
		}
		each.Trim(MaxContexts, limit)
	}
	// Applied within the bound, all in one group.
	var within View
	for i, e := range events {
		if _, err := within.ApplyWithin(limit, epoch, e.subject, []byte(e.data), uint64(i+1), at(i)); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := ids(&within), ids(&each); got != want {
		t.Fatalf("applied within %d bytes: %s; written after every event: %s", limit, got, want)
	}
	if _, ok := within.Contexts["c01"]; ok || len(within.Contexts) != 18 {
		t.Fatalf("view holds %s, want c02..c19: the rename dropped c01", ids(&within))
	}
	if value, _ := json.Marshal(&within); len(value) > limit {
		t.Fatalf("view takes %d bytes, over the bound %d", len(value), limit)
	}
}

// ids lists a view's contexts in the snapshot's order.
func ids(v *View) string {
	var list []string
	for _, c := range v.ordered() {
		list = append(list, c.ContextID)
	}
	return strings.Join(list, ",")
}

// TestFiltersOf: a user's filters are Filters with the user's token in place of "*", and every
// subject they match is relevant.
func TestFiltersOf(t *testing.T) {
	all, alice := Filters(), FiltersOf("alice")
	if len(all) != len(alice) {
		t.Fatalf("%d filters for alice, %d for everyone", len(alice), len(all))
	}
	for i, f := range alice {
		if want := strings.Replace(all[i], ".*.", ".alice.", 1); f != want {
			t.Errorf("filter %d = %s, want %s", i, f, want)
		}
		if !Relevant(f) {
			t.Errorf("filter %s is not relevant", f)
		}
		if tok, _ := UserToken(f); tok != "alice" {
			t.Errorf("filter %s: user %q", f, tok)
		}
	}
}
