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
				h.dispatch("agui.alice.TEXT_MESSAGE_CONTENT", data, uint64(i+1))
				for _, f := range feeds {
					<-f.Ready()
					buf, _ = f.Take(buf[:0], 1)
				}
			}
		})
	}
}

func TestTokenAndType(t *testing.T) {
	for subject, want := range map[string]string{
		"agui.alice.RUN_STARTED":          "alice RUN_STARTED",
		"context.a2a.~YUBi.AGENT_MESSAGE": "~YUBi AGENT_MESSAGE",
		"x":                               " ",
	} {
		tok, typ := tokenAndType(subject)
		if got := tok + " " + typ; got != want {
			t.Errorf("tokenAndType(%q) = %q, want %q", subject, got, want)
		}
	}
}
