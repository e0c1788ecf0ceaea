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
	// Fields whose AG-UI schema says more than their Go type: values the protocol accepts.
	for field, value := range protocolSamples[ev.EventType()] {
		f := v.FieldByName(field)
		f.SetZero()
		if err := json.Unmarshal([]byte(value), f.Addr().Interface()); err != nil {
			panic(ev.EventType() + "." + field + ": " + err.Error())
		}
	}
	return v.Interface().(Event)
}

const usageSample = `[{"provider":"provider-1","model":"model-1","inputTokens":3,"outputTokens":5,"totalTokens":8}]`

var protocolSamples = map[string]map[string]string{
	"RUN_STARTED": {"Input": `{"threadId":"threadId-1","runId":"runId-1","state":{},` +
		`"messages":[{"id":"m-1","role":"user","content":"hello"}],` +
		`"tools":[{"name":"search","description":"Searches the web","parameters":{"type":"object"}}],` +
		`"context":[{"description":"locale","value":"en"}],"forwardedProps":{}}`},
	"RUN_FINISHED":      {"Outcome": `{"type":"success","pendingToolCallIds":["toolCallId-1"]}`, "Usage": usageSample},
	"RUN_ERROR":         {"Usage": usageSample},
	"SUBAGENT_FINISHED": {"Outcome": `{"type":"suspended","interruptIds":["interrupt-1"]}`},
	"TOOL_CALL_RESULT":  {"Content": `"content-1"`},
	"MESSAGES_SNAPSHOT": {"Messages": `[{"id":"m-1","role":"user","content":"hello"}]`},
	"STATE_DELTA":       {"Delta": `[{"op":"add","path":"/items/0","value":{"value":true}},{"op":"move","from":"/a","path":"/b"}]`},
	"ACTIVITY_DELTA":    {"Patch": `[{"op":"replace","path":"/progress","value":0.5},{"op":"remove","path":"/draft"}]`},
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
			if f.Name == "Metadata" || f.Type == reflect.TypeOf(AGUIExtras{}) || f.Type == reflect.TypeOf(Attributable{}) {
				continue // optional extras stay out of the goldens
			}
			fill(v.Field(i), f.Tag, i)
		}
	}
}

// validateCases are events and the field Validate finds wrong in them ("" for valid). The
// AG-UI cases are also judged by @ag-ui/core (TestAGUICasesMatchCore): differs says why the
// catalog departs from it on a case.
var validateCases = []struct {
	channel routing.Channel
	in      string
	field   string
	differs string
}{
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","extra":{"kept":1}}`, "", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t"}`, "runId", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":1,"runId":"r"}`, "threadId", ""},
	{routing.AGUI, `{"type":"NOPE"}`, "type", ""},
	{routing.AGUI, `{"type":"TASK_SUBMITTED"}`, "type", ""},
	{routing.AGUI, `{"type":"TEXT_MESSAGE_START","messageId":"m","role":"robot"}`, "role", ""},
	{routing.AGUI, `{"type":"TEXT_MESSAGE_START","messageId":"m"}`, "", ""},
	{routing.AGUI, `{"type":"TEXT_MESSAGE_START","messageId":"m","role":"tool"}`, "", "WIRE.md: existing producers open tool messages with role tool"},
	{routing.AGUI, `{"type":"TEXT_MESSAGE_CHUNK","messageId":"m","role":"tool"}`, "role", ""},
	{routing.AGUI, `{"type":"TEXT_MESSAGE_END","messageId":"m","rawEvent":null}`, "rawEvent", ""},
	{routing.AGUI, `{"type":"TEXT_MESSAGE_END","messageId":"m","rawEvent":"x","metadata":{"k":null}}`, "", ""},
	{routing.AGUI, `{"type":"TEXT_MESSAGE_END","messageId":"m","metadata":[]}`, "metadata", ""},
	{routing.AGUI, `{"type":"STEP_STARTED","stepName":"s","subagentRunId":5}`, "subagentRunId", ""},
	{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"add","path":"/a","value":1}]}`, "", ""},
	{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"add","path":"/a","value":null},{"op":"remove","path":""}]}`, "", ""},
	{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"jump","path":"/a"}]}`, "delta[0].op", ""},
	{routing.AGUI, `{"type":"STATE_DELTA","delta":{}}`, "delta", ""},
	{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"add","path":"/a"}]}`, "delta[0].value", ""},
	{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"move","path":"/a"}]}`, "delta[0].from", ""},
	{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"remove","path":"a/b"}]}`, "delta[0].path", ""},
	{routing.AGUI, `{"type":"ACTIVITY_DELTA","messageId":"m","activityType":"a","patch":[{"op":"copy","from":"/a~2","path":"/b"}]}`, "patch[0].from", ""},
	{routing.AGUI, `{"type":"STATE_DELTA","delta":[{"op":"copy","from":"","path":"/a"},{"op":"add","path":"/b","value":1,"from":5}]}`, "", ""},
	{routing.AGUI, `{"type":"ACTIVITY_SNAPSHOT","messageId":"m","activityType":"a","content":{},"replace":null}`, "replace", ""},
	{routing.AGUI, `{"type":"STATE_SNAPSHOT","snapshot":null}`, "", ""},
	{routing.AGUI, `{"type":"CUSTOM","name":"artifact","value":null}`, "", ""},
	{routing.AGUI, `{"type":"CUSTOM","name":"artifact"}`, "value", ""},
	{routing.AGUI, `{"type":"MESSAGES_SNAPSHOT","messages":[1]}`, "messages[0]", ""},
	{routing.AGUI, `{"type":"TOOL_CALL_RESULT","messageId":"m","toolCallId":"c","content":[{"type":"text","text":"hi"}]}`, "", ""},
	{routing.AGUI, `{"type":"TOOL_CALL_RESULT","messageId":"m","toolCallId":"c","content":{"text":"hi"}}`, "content", ""},
	{routing.AGUI, `{"type":"TOOL_CALL_RESULT","messageId":"m","toolCallId":"c","content":null}`, "content", ""},
	{routing.AGUI, `{"type":"REASONING_ENCRYPTED_VALUE","subtype":"message","entityId":"m","encryptedValue":"e"}`, "", ""},
	{routing.AGUI, `{"type":"REASONING_ENCRYPTED_VALUE","subtype":"tool_call","entityId":"c","encryptedValue":"e"}`, "subtype", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","input":{"threadId":"t","runId":"r","messages":[],"state":null}}`, "", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","input":"hello"}`, "input", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","input":{"threadId":"t","runId":"r"}}`, "input.messages", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","input":{"threadId":"t","runId":"r","messages":[],"forwardedProps":null}}`, "input.forwardedProps", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","input":{"threadId":"t","runId":"r","messages":[],"tools":[{"name":"x"}]}}`, "input.tools[0].description", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","input":{"threadId":"t","runId":"r","messages":[],"resume":[{"interruptId":"i","status":"done"}]}}`, "input.resume[0].status", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","result":null}`, "result", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":"success"}`, "outcome", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"cancelled"}}`, "", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"interrupt","interrupts":[{"id":"i","reason":"approval"}]}}`, "", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"interrupt"}}`, "outcome.interrupts", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"interrupt","interrupts":[]}}`, "outcome.interrupts", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"interrupt","interrupts":[{"id":"i"}]}}`, "outcome.interrupts[0].reason", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"cancelled","interrupts":[],"pendingToolCallIds":1}}`, "", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","outcome":{"type":"success","pendingToolCallIds":[1]}}`, "outcome.pendingToolCallIds[0]", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","usage":[{"inputTokens":-1}]}`, "usage[0].inputTokens", ""},
	{routing.AGUI, `{"type":"RUN_FINISHED","threadId":"t","runId":"r","usage":[{"model":"m","outputTokens":1.5}]}`, "usage[0].outputTokens", ""},
	{routing.AGUI, `{"type":"RUN_STARTED","threadId":"t","runId":"r","subagentRunId":5}`, "", ""},
	{routing.AGUI, `{"type":"RUN_ERROR","message":"m","usage":[{"provider":"p","inputTokens":0}]}`, "", ""},
	{routing.AGUI, `{"type":"SUBAGENT_STARTED","subagentRunId":"s","name":"researcher"}`, "", ""},
	{routing.AGUI, `{"type":"SUBAGENT_STARTED","name":"researcher"}`, "subagentRunId", ""},
	{routing.AGUI, `{"type":"SUBAGENT_FINISHED","subagentRunId":"s","outcome":{"type":"interrupt"}}`, "outcome.type", ""},
	{routing.AGUI, `{"type":"SUBAGENT_FINISHED","subagentRunId":"s","result":null}`, "result", ""},
	{routing.AGUI, `{"type":"SUBAGENT_ERROR","subagentRunId":"s"}`, "message", ""},
	{routing.A2A, `{"type":"TASK_STATUS_UPDATE","taskId":"t","contextId":"c","state":"TASK_STATE_WORKING"}`, "", ""},
	{routing.A2A, `{"type":"TASK_STATUS_UPDATE","taskId":"t","contextId":"c","state":"working"}`, "state", ""},
	{routing.A2A, `{"type":"TASK_SUBMITTED","taskId":"t","contextId":"c","agentName":"a","input":null}`, "", ""},
	{routing.A2A, `{"type":"ARTIFACT_CREATED","taskId":"t","contextId":"c","artifact":{"parts":[]}}`, "artifact.artifactId", ""},
	{routing.A2A, `{"type":"ARTIFACT_UPDATED","taskId":"t","contextId":"c","artifactId":"a","append":"yes","lastChunk":true}`, "append", ""},
	{routing.A2A, `{"type":"JSON_RPC_RESPONSE","id":null,"result":{}}`, "", ""},
	{routing.A2A, `{"type":"JSON_RPC_ERROR","id":7,"code":1.5,"message":"m"}`, "code", ""},
	{routing.A2A, `{"type":"JSON_RPC_ERROR","id":{},"code":1,"message":"m"}`, "id", ""},
	{routing.System, `{"type":"CONTEXTS_SNAPSHOT","contexts":[{"context_id":"c","name":"n","created_at":"2026-01-01T00:00:00Z","updated_at":"yesterday","message_count":0,"task_count":0}]}`, "contexts[0].updated_at", ""},
	{routing.System, `{"type":"HEARTBEAT"}`, "", ""},
	{routing.Analytics, `{"type":"PAGE_VIEW","session_id":"s","user_id":null}`, "", ""},
	{routing.Analytics, `{"type":"PAGE_VIEW","user_id":null}`, "session_id", ""},
	{routing.Analytics, `{"type":"ENGAGEMENT_UPDATE","session_id":"s","scroll_depth":"deep"}`, "scroll_depth", ""},
}

func TestValidate(t *testing.T) {
	for _, tt := range validateCases {
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
