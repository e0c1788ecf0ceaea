// Package event reads event JSON as producers send it: one object with a SCREAMING_SNAKE_CASE
// "type", an optional "timestamp" and payload fields, and writes it the way the plane stores it:
// compact, "type" first, then "timestamp", then the other fields in the producer's order.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/eventsd/eventsd/routing"
)

// FieldError is a problem with one part of an event; Field is empty when it is the whole body.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Msg }

func fieldError(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Raw is an event as its top-level fields, in the producer's order, so that unknown fields
// survive untouched.
type Raw struct {
	Type      string
	timestamp json.RawMessage
	fields    []field // every field but type and timestamp
}

type field struct {
	key   string
	value json.RawMessage
}

// Parse reads a JSON object with a valid "type".
func Parse(raw []byte) (*Raw, error) {
	return parse(raw, "")
}

// ParseAs reads a JSON object of type typ: its "type", if it has one, must be typ.
func ParseAs(raw []byte, typ string) (*Raw, error) {
	return parse(raw, typ)
}

func parse(raw []byte, typ string) (*Raw, error) {
	fields, err := parseObject(raw)
	if err != nil {
		return nil, err
	}
	ev := &Raw{}
	hasType := false
	for _, f := range fields {
		switch f.key {
		case "type":
			if err := json.Unmarshal(f.value, &ev.Type); err != nil {
				return nil, fieldError("type", "type must be a string")
			}
			hasType = true
		case "timestamp":
			ev.timestamp = f.value
		default:
			ev.fields = append(ev.fields, f)
		}
	}
	switch {
	case !hasType && typ == "":
		return nil, fieldError("type", "missing field type")
	case !hasType:
		ev.Type = typ
	case typ != "" && ev.Type != typ:
		return nil, fieldError("type", "type %q differs from the requested type %q", ev.Type, typ)
	}
	if err := routing.ValidateType(ev.Type); err != nil {
		return nil, fieldError("type", "type %q: want SCREAMING_SNAKE_CASE, A-Z, 0-9 and _", ev.Type)
	}
	return ev, nil
}

// parseObject reads one JSON object in valid UTF-8 as its fields, in order; a key that appears
// twice is an error.
func parseObject(raw []byte) ([]field, error) {
	if !utf8.Valid(raw) {
		return nil, fieldError("", "body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fieldError("", "body is not a JSON object")
	}
	var fields []field
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fieldError("", "body is not valid JSON: %v", jsonError(err))
		}
		key := tok.(string) // object keys are always strings
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fieldError(key, "body is not valid JSON at field %q: %v", key, jsonError(err))
		}
		if seen[key] {
			return nil, fieldError(key, "field %q appears twice", key)
		}
		seen[key] = true
		fields = append(fields, field{key, value})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fieldError("", "body is not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fieldError("", "body holds more than one JSON value")
	}
	return fields, nil
}

// jsonError words a decoding error for people: encoding/json says "EOF" for a body cut short.
func jsonError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of body")
	}
	return err
}

// TakeUserID removes the top-level user_id field and returns it.
func (ev *Raw) TakeUserID() (string, error) {
	for i, f := range ev.fields {
		if f.key != "user_id" {
			continue
		}
		var user string
		if err := json.Unmarshal(f.value, &user); err != nil || user == "" {
			return "", fieldError("user_id", "user_id must be a non-empty string")
		}
		ev.fields = append(ev.fields[:i], ev.fields[i+1:]...)
		return user, nil
	}
	return "", fieldError("user_id", "missing field user_id")
}

// Stamp checks or fills the timestamp: epoch milliseconds on AG-UI events (an RFC 3339 string
// is converted), an RFC 3339 string elsewhere.
func (ev *Raw) Stamp(epochMillis bool, now time.Time) error {
	if ev.timestamp == nil {
		if epochMillis {
			ev.timestamp = strconv.AppendInt(nil, now.UnixMilli(), 10)
		} else {
			ev.timestamp = strconv.AppendQuote(nil, now.UTC().Format(time.RFC3339Nano))
		}
		return nil
	}
	var s string
	if json.Unmarshal(ev.timestamp, &s) == nil {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fieldError("timestamp", "timestamp %q is not RFC 3339", s)
		}
		if epochMillis {
			ev.timestamp = strconv.AppendInt(nil, t.UnixMilli(), 10)
		}
		return nil
	}
	var n json.Number
	if epochMillis && json.Unmarshal(ev.timestamp, &n) == nil {
		if _, err := n.Int64(); err == nil {
			return nil
		}
	}
	if epochMillis {
		return fieldError("timestamp", "timestamp must be an integer of epoch milliseconds or an RFC 3339 string")
	}
	return fieldError("timestamp", "timestamp must be an RFC 3339 string")
}

// Encode writes the event compactly: type, timestamp (when it has one), then the other fields in
// their order.
func (ev *Raw) Encode() []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"type":`)
	buf.Write(strconv.AppendQuote(nil, ev.Type))
	if ev.timestamp != nil {
		buf.WriteString(`,"timestamp":`)
		buf.Write(ev.timestamp)
	}
	for _, f := range ev.fields {
		key, _ := json.Marshal(f.key)
		buf.WriteByte(',')
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(f.value)
	}
	buf.WriteByte('}')
	var out bytes.Buffer
	_ = json.Compact(&out, buf.Bytes()) // every part was valid JSON
	return out.Bytes()
}
