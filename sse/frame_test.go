package sse

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/routing"
)

func TestFrameEvent(t *testing.T) {
	cur := routing.Cursor{Seq: 7, Epoch: 35}
	tests := []struct {
		name    string
		subject string
		data    string
		wrap    bool
		want    string // "" for skipped
	}{
		{"plain", "agui.a.X", `{"type":"X"}`, false, "id: 7-z\ndata: {\"type\":\"X\"}\n\n"},
		{"multi-line compacted", "agui.a.X", "{\n \"a\" : [1, 2]\r\n}", false, "id: 7-z\ndata: {\"a\":[1,2]}\n\n"},
		{"wrapped", "context.a2a.a.X", `{"type":"X"}`, true, "id: 7-z\ndata: {\"protocol\":\"a2a\",\"event\":{\"type\":\"X\"}}\n\n"},
		{"not JSON", "agui.a.X", "hello\n\ndata: x", false, ""},
		{"empty", "agui.a.X", "", false, ""},
		{"too large", "agui.a.X", `"` + strings.Repeat("x", 64) + `"`, false, ""},
		{"wrap outside contexts", "agui.a.X", `{}`, true, ""},
	}
	fw := frameWriter{maxEvent: 64}
	want := ""
	for _, tt := range tests {
		want += tt.want
		got, err := fw.event(bus.Event{Subject: tt.subject, Cursor: cur, Data: []byte(tt.data)}, tt.wrap)
		if string(got) != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("%s: event() = %q, %v, want %q", tt.name, got, err, tt.want)
		}
		if all := string(fw.frames()); all != want {
			t.Errorf("%s: frames() = %q, want %q (earlier frames kept, a skipped one appends nothing)", tt.name, all, want)
		}
	}
}

func TestFrameNotice(t *testing.T) {
	var fw frameWriter
	n := &bus.Notice{Reason: bus.NoticeCursorExpired, Cursor: routing.Cursor{Seq: 1, Epoch: 2}, First: 9}
	now := time.UnixMilli(1776680130123)
	for c, want := range map[routing.Channel]string{
		routing.A2A:  "event: resync\ndata: {\"type\":\"resync\",\"reason\":\"cursor_expired\",\"last_event_id\":\"1-2\",\"first_seq\":9}\n\n",
		routing.AGUI: "event: resync\ndata: {\"type\":\"CUSTOM\",\"timestamp\":1776680130123,\"name\":\"resync\",\"value\":{\"type\":\"resync\",\"reason\":\"cursor_expired\",\"last_event_id\":\"1-2\",\"first_seq\":9}}\n\n",
	} {
		fw.reset()
		if got := string(fw.notice(n, c, now)); got != want || string(fw.frames()) != want {
			t.Errorf("notice(%s) = %q, want %q", c, got, want)
		}
	}
}

func FuzzFrameEvent(f *testing.F) {
	for _, s := range []string{`{"type":"X"}`, "{\n\"a\":1}", "x\n\ny", `"\u2028"`, "[1,\r\n2]"} {
		f.Add([]byte(s), false)
	}
	fw := frameWriter{maxEvent: 1 << 16}
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		fw.reset()
		frame, err := fw.event(bus.Event{Subject: "context.agui.u.X", Cursor: routing.Cursor{Seq: 1, Epoch: 1}, Data: data}, wrap)
		if err != nil {
			return
		}
		s := string(frame)
		lines := strings.Split(strings.TrimSuffix(s, "\n\n"), "\n")
		if !strings.HasSuffix(s, "\n\n") || strings.Contains(s, "\r") || len(lines) != 2 ||
			lines[0] != "id: 1-1" || !strings.HasPrefix(lines[1], "data: ") || !json.Valid([]byte(lines[1][6:])) {
			t.Fatalf("event(%q) = %q: not one id line and one JSON data line", data, frame)
		}
	})
}

// BenchmarkFrameEvent encodes one event: as the shared feed hands it over (checked compact
// once for all connections) and as a connection's own consumer does (validated and compacted
// per connection).
func BenchmarkFrameEvent(b *testing.B) {
	ev := bus.Event{Subject: "context.agui.alice.TEXT_MESSAGE_CONTENT", Cursor: routing.Cursor{Seq: 123456, Epoch: 1776680130123456789},
		Data: []byte(`{"type":"TEXT_MESSAGE_CONTENT","timestamp":1776680130123,"messageId":"msg_1","delta":"Hello, world! This is a token."}`)}
	for _, compact := range []bool{true, false} {
		b.Run(fmt.Sprintf("compact=%v", compact), func(b *testing.B) {
			ev.Compact = compact
			fw := frameWriter{maxEvent: 1 << 20}
			b.ReportAllocs()
			b.SetBytes(int64(len(ev.Data)))
			for b.Loop() {
				fw.reset()
				if _, err := fw.event(ev, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
