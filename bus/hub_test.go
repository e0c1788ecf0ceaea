package bus

import (
	"fmt"
	"testing"
)

// BenchmarkHubDispatch measures handing one event to the connections of its user among many.
func BenchmarkHubDispatch(b *testing.B) {
	for _, conns := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			h := &hub{limit: 1, subs: map[string][]*hubSub{}}
			join := func(token string) *Feed {
				f := &Feed{q: newQueue()}
				h.mu.Lock()
				h.add(&hubSub{token: token, feed: f, live: true})
				h.mu.Unlock()
				return f
			}
			var feeds []*Feed
			for range conns {
				feeds = append(feeds, join("alice"))
			}
			for u := range 10_000 { // other users, so the lookup is a real one
				join(fmt.Sprintf("user%d", u))
			}
			var buf []Event
			data := []byte(`{"type":"TEXT_MESSAGE_CONTENT","timestamp":1776680130123,"messageId":"m","delta":"hi"}`)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				h.dispatch("agui.alice.TEXT_MESSAGE_CONTENT", data, uint64(i+1), 0)
				for _, f := range feeds {
					<-f.Ready()
					buf, _ = f.Take(buf[:0], 1)
				}
			}
		})
	}
}

// TestGoLiveAheadOfHub: a feed that caught up on its own consumer past the point the hub has
// reached (the hub's consumer was being recreated, say) gets nothing twice when the hub
// catches up in turn.
func TestGoLiveAheadOfHub(t *testing.T) {
	h := &hub{limit: 16, subs: map[string][]*hubSub{}}
	f := &Feed{q: newQueue(), h: h}
	s := f.join("alice", nil, false)
	h.dispatch("agui.alice.STEP_STARTED", []byte(`{}`), 4, 0) // held while the feed catches up
	if !h.goLive(s, 10) {
		t.Fatal("the hub dropped a feed holding one event")
	}
	for seq := range uint64(13) {
		h.dispatch("agui.alice.STEP_STARTED", []byte(`{}`), seq, 0)
	}
	if got := taken(f); got != "[11 12]" {
		t.Fatalf("after catching up to 10 the feed got %v, want [11 12]", got)
	}
}

// TestJoinLiveBehindHub: a feed that joins live gets nothing stored before it joined, even from
// a hub still behind (it has delivered 5 of the 15 events the stream held).
func TestJoinLiveBehindHub(t *testing.T) {
	h := &hub{limit: 64, subs: map[string][]*hubSub{}}
	h.dispatch("agui.bob.STEP_STARTED", []byte(`{}`), 5, 10)
	f := &Feed{q: newQueue(), h: h}
	f.join("alice", nil, true)
	for seq := range uint64(18) {
		h.dispatch("agui.alice.STEP_STARTED", []byte(`{}`), seq, 0)
	}
	if got := taken(f); got != "[16 17]" {
		t.Fatalf("joined when the stream held 15 events, the feed got %v, want [16 17]", got)
	}
}

// taken takes every event waiting on f and lists their sequences.
func taken(f *Feed) string {
	evs, _ := f.Take(nil, 100)
	var got []uint64
	for _, ev := range evs {
		got = append(got, ev.Cursor.Seq)
	}
	return fmt.Sprint(got)
}
