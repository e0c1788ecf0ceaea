package bus

import (
	"fmt"
	"testing"
)

// BenchmarkHubDispatch measures handing one event to the connections of its user among many.
func BenchmarkHubDispatch(b *testing.B) {
	for _, conns := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			h := &hub{subs: map[string][]*hubSub{}}
			var subs []*hubSub
			for range conns {
				subs = append(subs, h.register("alice", nil, 1))
			}
			for u := range 10_000 { // other users, so the lookup is a real one
				h.register(fmt.Sprintf("user%d", u), nil, 1)
			}
			data := []byte(`{"type":"TEXT_MESSAGE_CONTENT","timestamp":1776680130123,"messageId":"m","delta":"hi"}`)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				h.dispatch("agui.alice.TEXT_MESSAGE_CONTENT", data, uint64(i))
				for _, s := range subs {
					<-s.q
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
