package event

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestEncodeOrder(t *testing.T) {
	now := time.Date(2026, 4, 20, 10, 15, 30, 123e6, time.UTC)
	tests := []struct {
		name, in  string
		epochMs   bool
		want      string
		wantField string // non-empty: Parse or Stamp fails on this field
	}{
		{"type first, order kept", `{"b":1,"type":"X","a":{"z":1, "y":2}}`, false, `{"type":"X","timestamp":"2026-04-20T10:15:30.123Z","b":1,"a":{"z":1,"y":2}}`, ""},
		{"epoch filled", `{"type":"X"}`, true, `{"type":"X","timestamp":1776680130123}`, ""},
		{"rfc3339 to epoch", `{"timestamp":"2026-04-20T12:15:30.123+02:00","type":"X"}`, true, `{"type":"X","timestamp":1776680130123}`, ""},
		{"rfc3339 kept", `{"type":"X","timestamp":"2026-04-20T12:15:30+02:00"}`, false, `{"type":"X","timestamp":"2026-04-20T12:15:30+02:00"}`, ""},
		{"escaped key", `{"type":"X","a\"b":1,"\u00e9":2}`, false, `{"type":"X","timestamp":"2026-04-20T10:15:30.123Z","a\"b":1,"é":2}`, ""},
		{"big numbers kept", `{"type":"X","n":123456789012345678901234567890}`, false, `{"type":"X","timestamp":"2026-04-20T10:15:30.123Z","n":123456789012345678901234567890}`, ""},
		{"bool timestamp", `{"type":"X","timestamp":true}`, true, "", "timestamp"},
		{"null type", `{"type":null}`, false, "", "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Parse([]byte(tt.in))
			if err == nil {
				err = ev.Stamp(tt.epochMs, now)
			}
			var fe *FieldError
			if tt.wantField != "" {
				if !errors.As(err, &fe) || fe.Field != tt.wantField {
					t.Fatalf("Parse+Stamp(%s) = %v, want an error on %q", tt.in, err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(ev.Encode()); got != tt.want {
				t.Fatalf("Encode(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseAs(t *testing.T) {
	ev, err := ParseAs([]byte(`{"a":1}`), "RUN_STARTED")
	if err != nil || string(ev.Encode()) != `{"type":"RUN_STARTED","a":1}` {
		t.Fatalf("ParseAs = %v, %v", ev, err)
	}
	if _, err := ParseAs([]byte(`{"type":"OTHER"}`), "RUN_STARTED"); err == nil {
		t.Fatal("ParseAs with a different type: want an error")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"type":"X"}`, `{"type":"RUN_STARTED","timestamp":1,"threadId":"t"}`, `{"type":"A","timestamp":"2026-01-01T00:00:00Z","x":[1,{"y":null}]}`, `{"user_id":"u","type":"A"}`, `[]`, `{`} {
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, in []byte, epochMs bool) {
		ev, err := Parse(in)
		if err != nil {
			return
		}
		_, _ = ev.TakeUserID()
		if ev.Stamp(epochMs, time.Unix(0, 0)) != nil {
			return
		}
		out := ev.Encode()
		if !json.Valid(out) || !strings.HasPrefix(string(out), `{"type":"`+ev.Type+`","timestamp":`) || strings.ContainsAny(string(out), "\r\n") {
			t.Fatalf("Encode(%q) = %q: not compact JSON led by type and timestamp", in, out)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Encode(%q)) = %v", in, err)
		}
		if string(again.Encode()) != string(out) {
			t.Fatalf("Encode is not stable: %q then %q", out, again.Encode())
		}
	})
}

func ExampleParse() {
	ev, _ := Parse([]byte(`{"threadId":"t1","type":"RUN_STARTED","runId":"r1"}`))
	_ = ev.Stamp(true, time.UnixMilli(1776680130123))
	fmt.Println(string(ev.Encode()))
	// Output: {"type":"RUN_STARTED","timestamp":1776680130123,"threadId":"t1","runId":"r1"}
}
