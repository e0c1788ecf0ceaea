package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eventsd/eventsd/routing"
)

var update = flag.Bool("update", false, "rewrite the golden files from sample values")

var channels = []routing.Channel{routing.AGUI, routing.A2A, routing.System, routing.Analytics}

func goldenPath(c routing.Channel, typ string) string {
	return filepath.Join("testdata", "golden", string(c), typ+".json")
}

// TestGolden pins every catalog type's JSON: decoding a golden file and encoding it again gives
// the same bytes, and the file passes validation.
func TestGolden(t *testing.T) {
	for _, c := range channels {
		for _, typ := range Types(c) {
			t.Run(string(c)+"/"+typ, func(t *testing.T) {
				path := goldenPath(c, typ)
				if *update {
					ev, _ := New(c, typ)
					b, err := json.Marshal(sample(ev))
					if err != nil {
						t.Fatal(err)
					}
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				want = bytes.TrimSpace(want)
				ev, err := Decode(c, want)
				if err != nil {
					t.Fatalf("Decode(%s) = %v", path, err)
				}
				got, err := json.Marshal(ev)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("encode(decode(%s)) =\n%s, %v\nwant\n%s", path, got, err, want)
				}
				prefix := `{"type":"` + typ + `","timestamp":`
				if !strings.HasPrefix(string(got), prefix) {
					t.Fatalf("%s does not start with %s", got, prefix)
				}
				if (c == routing.AGUI) != (got[len(prefix)] != '"') {
					t.Fatalf("%s: timestamp must be epoch ms on AG-UI and RFC 3339 elsewhere", got)
				}
			})
		}
	}
}

// sample fills an event with recognisable values: strings named after their field, the first
// allowed value of an enum, and null for every other analytics field.
func sample(ev Event) Event {
	v := reflect.New(reflect.TypeOf(ev)).Elem()
	fill(v, "", 0)
	if ts := v.FieldByName("Timestamp"); ts.Kind() == reflect.Int64 {
		ts.SetInt(1776680130123)
	}
	// Fields whose AG-UI schema is stricter than "an object": values the protocol accepts.
	for field, value := range protocolSamples[ev.EventType()] {
		f := v.FieldByName(field)
		if f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Slice {
			f.Set(reflect.ValueOf([]json.RawMessage{json.RawMessage(value)}))
		} else {
			f.SetBytes([]byte(value))
		}
	}
	return v.Interface().(Event)
}

var protocolSamples = map[string]map[string]string{
	"RUN_STARTED":       {"Input": `{"threadId":"threadId-1","runId":"runId-1","state":{},"messages":[],"tools":[],"context":[],"forwardedProps":{}}`},
	"RUN_FINISHED":      {"Outcome": `{"type":"success"}`, "Usage": `{"model":"m","inputTokens":3,"outputTokens":5}`},
	"TOOL_CALL_RESULT":  {"Content": `"content-1"`},
	"MESSAGES_SNAPSHOT": {"Messages": `{"id":"m-1","role":"user","content":"hello"}`},
}

func fill(v reflect.Value, tag reflect.StructTag, depth int) {
	name, _, _ := strings.Cut(tag.Get("json"), ",")
	switch {
	case v.Type() == reflect.TypeOf(time.Time{}):
		v.Set(reflect.ValueOf(time.Date(2026, 4, 20, 10, 15, 30, 123e6, time.UTC)))
	case v.Type() == reflect.TypeOf(json.RawMessage(nil)):
		switch tag.Get("kind") {
		case "id":
			v.SetBytes([]byte(`"req-1"`))
		default:
			v.SetBytes([]byte(`{"` + name + `":true}`))
		}
	case v.Kind() == reflect.Pointer:
		if depth%2 == 0 { // every other optional analytics field is null
			p := reflect.New(v.Type().Elem())
			fill(p.Elem(), tag, depth)
			v.Set(p)
		}
	case v.Kind() == reflect.String:
		if e := tag.Get("enum"); e != "" {
			first, _, _ := strings.Cut(e, ",")
			v.SetString(first)
		} else if name == "path" || name == "from" {
			v.SetString("/" + name + "-1") // a JSON Pointer
		} else {
			v.SetString(name + "-1")
		}
	case v.Kind() == reflect.Int64:
		v.SetInt(42)
	case v.Kind() == reflect.Float64:
		v.SetFloat(0.75)
	case v.Kind() == reflect.Bool:
		v.SetBool(true)
	case v.Kind() == reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(s.Index(0), tag, depth)
		v.Set(s)
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if f.Name == "SubagentRunID" || f.Name == "Metadata" || f.Name == "RawEvent" && f.Type.Kind() != reflect.Struct {
				continue // optional extras stay out of the goldens
			}
			fill(v.Field(i), f.Tag, i)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		channel routing.Channel
		in      string
		field   string // "" for valid
	}{
		{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","extra":{"kept":1}}`, ""},
		{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t"}`, "runId"},
		{routing.AGUI, `{"type":"RUN_STARTED","threadId":1,"runId":"r"}`, "threadId"},
		{routing.AGUI, `{"type":"NOPE"}`, "type"},
		{routing.AGUI, `{"type":"TASK_SUBMITTED"}`, "type"},
		{routing.AGUI, `{"type":"TEXT_MESSAGE_START","messageId":"m","role":"robot"}`, "role"},
		{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"add","path":"/a","value":1}]}`, ""},
		{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"jump","path":"/a"}]}`, "delta[0].op"},
		{routing.AGUI, `{"type":"STATE_DELTA","delta":{}}`, "delta"},
		{routing.AGUI, `{"type":"CUSTOM","name":"artifact","value":null}`, ""},
		{routing.AGUI, `{"type":"CUSTOM","name":"artifact"}`, "value"},
		{routing.AGUI, `{"type":"MESSAGES_SNAPSHOT","messages":[1]}`, "messages[0]"},
		{routing.A2A, `{"type":"TASK_STATUS_UPDATE","taskId":"t","contextId":"c","state":"TASK_STATE_WORKING"}`, ""},
		{routing.A2A, `{"type":"TASK_STATUS_UPDATE","taskId":"t","contextId":"c","state":"working"}`, "state"},
		{routing.A2A, `{"type":"ARTIFACT_CREATED","taskId":"t","contextId":"c","artifact":{"parts":[]}}`, "artifact.artifactId"},
		{routing.A2A, `{"type":"ARTIFACT_UPDATED","taskId":"t","contextId":"c","artifactId":"a","append":"yes","lastChunk":true}`, "append"},
		{routing.A2A, `{"type":"JSON_RPC_RESPONSE","id":null,"result":{}}`, ""},
		{routing.A2A, `{"type":"JSON_RPC_ERROR","id":7,"code":1.5,"message":"m"}`, "code"},
		{routing.A2A, `{"type":"JSON_RPC_ERROR","id":{},"code":1,"message":"m"}`, "id"},
		{routing.System, `{"type":"CONTEXTS_SNAPSHOT","contexts":[{"context_id":"c","name":"n","created_at":"2026-01-01T00:00:00Z","updated_at":"yesterday","message_count":0,"task_count":0}]}`, "contexts[0].updated_at"},
		{routing.System, `{"type":"HEARTBEAT"}`, ""},
		{routing.Analytics, `{"type":"PAGE_VIEW","session_id":"s","user_id":null}`, ""},
		{routing.Analytics, `{"type":"PAGE_VIEW","user_id":null}`, "session_id"},
		{routing.Analytics, `{"type":"ENGAGEMENT_UPDATE","session_id":"s","scroll_depth":"deep"}`, "scroll_depth"},
	}
	for _, tt := range tests {
		raw, err := Parse([]byte(tt.in))
		if err == nil {
			err = raw.Validate(tt.channel)
		}
		var fe *FieldError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("Validate(%s, %s) = %v, want valid", tt.channel, tt.in, err)
		case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
			t.Errorf("Validate(%s, %s) = %v, want an error on %s", tt.channel, tt.in, err, tt.field)
		}
	}
}

func TestEncodeFillsTimestamp(t *testing.T) {
	now := time.Date(2026, 4, 20, 12, 15, 30, 123e6, time.FixedZone("CEST", 7200))
	for _, tt := range []struct {
		ev   Event
		want string
	}{
		{RunStarted{ThreadID: "t", RunID: "r"}, `{"type":"RUN_STARTED","timestamp":1776680130123,"threadId":"t","runId":"r"}`},
		{ContextDeleted{ContextID: "c"}, `{"type":"CONTEXT_DELETED","timestamp":"2026-04-20T10:15:30.123Z","contextId":"c"}`},
		{PageView{SessionID: "s"}, `{"type":"PAGE_VIEW","timestamp":"2026-04-20T10:15:30.123Z","session_id":"s","user_id":null,"page_url":null,"content_id":null,"referrer":null}`},
		{RunStarted{Timestamp: 5}, `{"type":"RUN_STARTED","timestamp":5,"threadId":"","runId":""}`},
	} {
		got, err := Encode(tt.ev, now)
		if err != nil || string(got) != tt.want {
			t.Errorf("Encode(%#v) = %s, %v, want %s", tt.ev, got, err, tt.want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, c := range channels {
		for _, typ := range Types(c) {
			if b, err := os.ReadFile(goldenPath(c, typ)); err == nil {
				f.Add(string(c), b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, channel string, data []byte) {
		c := routing.Channel(channel)
		ev, err := Decode(c, data)
		if err != nil {
			return
		}
		// A valid event encodes to valid JSON of the same type that validates again.
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("Marshal(Decode(%q)) = %v", data, err)
		}
		if _, err := Decode(c, out); err != nil {
			t.Fatalf("Decode(Marshal(Decode(%q))) = %v for %s", data, err, out)
		}
	})
}
