package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eventsd/eventsd/routing"
)

// Event is one typed event of the catalog. Its JSON is the wire form: "type" first, then
// "timestamp", then the payload fields.
type Event interface {
	// EventType is the event's "type", e.g. "RUN_STARTED".
	EventType() string
	// Channel is the channel the event is published on.
	Channel() routing.Channel
}

// withType writes v's JSON object with "type" in front. v must not be an Event itself (callers
// pass a copy of their struct as a type without methods), or it would recurse.
func withType(typ string, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body)+len(typ)+10)
	out = append(out, `{"type":"`...)
	out = append(out, typ...)
	out = append(out, '"')
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// Encode returns ev's wire JSON, with its timestamp set to now when it has none.
func Encode(ev Event, now time.Time) ([]byte, error) {
	v := reflect.New(reflect.TypeOf(ev)).Elem()
	v.Set(reflect.ValueOf(ev))
	if ts := v.FieldByName("Timestamp"); ts.IsValid() && ts.IsZero() {
		switch ts.Interface().(type) {
		case int64:
			ts.SetInt(now.UnixMilli())
		case time.Time:
			ts.Set(reflect.ValueOf(now.UTC()))
		}
	}
	return json.Marshal(v.Interface())
}

// registry maps channel and type to the Go type of the event.
var registry = map[routing.Channel]map[string]reflect.Type{}

func register(events ...Event) {
	for _, ev := range events {
		m := registry[ev.Channel()]
		if m == nil {
			m = map[string]reflect.Type{}
			registry[ev.Channel()] = m
		}
		m[ev.EventType()] = reflect.TypeOf(ev)
	}
}

// Types returns the event types of a channel, sorted.
func Types(c routing.Channel) []string {
	var types []string
	for t := range registry[c] {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}

// New returns a zero value of the catalog's type for channel c and type typ, or false.
func New(c routing.Channel, typ string) (Event, bool) {
	t, ok := registry[c][typ]
	if !ok {
		return nil, false
	}
	return reflect.New(t).Elem().Interface().(Event), true
}

// Decode reads an event of channel c from its wire JSON into its catalog type.
func Decode(c routing.Channel, data []byte) (Event, error) {
	raw, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if err := raw.Validate(c); err != nil {
		return nil, err
	}
	t := registry[c][raw.Type]
	p := reflect.New(t)
	if err := json.Unmarshal(data, p.Interface()); err != nil {
		return nil, fieldError("", "decoding %s: %v", raw.Type, err)
	}
	ev := p.Elem().Interface().(Event)
	// encoding/json matches names regardless of case, so a key the check above took for one the
	// catalog does not know ("outCome") may have filled a field of the event: what the event
	// writes must pass the check as well.
	out, err := json.Marshal(ev)
	if err == nil {
		var back *Raw
		if back, err = Parse(out); err == nil {
			err = back.Validate(c)
		}
	}
	if err != nil {
		return nil, fieldError("", "decoding %s: a field name that differs from the catalog's only in case: %v", raw.Type, err)
	}
	return ev, nil
}

// Validate checks the event against the catalog of channel c: a known type, every required
// field present, and every known field of the right JSON type. Unknown fields are allowed.
func (r *Raw) Validate(c routing.Channel) error {
	t, ok := registry[c][r.Type]
	if !ok {
		return fieldError("type", "unknown %s event type %q: want one of %s", c, r.Type, strings.Join(Types(c), ", "))
	}
	fields := make(map[string]json.RawMessage, len(r.fields))
	for _, f := range r.fields {
		fields[f.key] = f.value
	}
	return validateObject("", fields, specOf(t))
}

// fieldSpec is what the catalog says about one JSON field, derived from the Go struct and its
// tags: json (name; omitempty makes it optional), enum (allowed strings), kind (what a
// json.RawMessage holds, "message" for an AG-UI message, or "pointer" for a JSON Pointer
// string), min (least integer value or
// array length), and for the fields of one variant of an object, variant ("type=success": the
// field belongs to the objects whose type is success) or required (the same, and required there).
type fieldSpec struct {
	name     string
	kind     kind
	required bool       // present and not null
	variant  *condition // the objects the field belongs to; nil: all
	nullable bool       // null allowed
	enum     []string   // allowed string values
	min      *int64     // least integer value, or least number of items
	elem     *fieldSpec
	object   []fieldSpec // for kindObject from a struct
}

// condition holds for an object whose field has one of values: "op=move,copy" in a tag.
type condition struct {
	field  string
	values []string
}

func parseCondition(tag string) *condition {
	field, values, _ := strings.Cut(tag, "=")
	return &condition{field, strings.Split(values, ",")}
}

func (c *condition) holds(fields map[string]json.RawMessage) bool {
	var s string
	return json.Unmarshal(fields[c.field], &s) == nil && slices.Contains(c.values, s)
}

type kind int

const (
	kindAny kind = iota
	kindString
	kindInteger
	kindNumber
	kindBool
	kindObject
	kindArray
	kindTime    // RFC 3339 string
	kindID      // string, number or null (JSON-RPC id)
	kindValue   // any JSON value but null
	kindPointer // JSON Pointer (RFC 6901) string
	kindContent // string or array of objects (AG-UI message content)
)

func (k kind) String() string {
	return [...]string{"any JSON value", "a string", "an integer", "a number", "a boolean", "an object", "an array",
		"an RFC 3339 string", "a string, number or null", "any JSON value but null", "a JSON Pointer string",
		"a string or an array of objects"}[k]
}

var specs sync.Map // reflect.Type -> []fieldSpec

func specOf(t reflect.Type) []fieldSpec {
	if s, ok := specs.Load(t); ok {
		return s.([]fieldSpec)
	}
	var out []fieldSpec
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			out = append(out, specOf(f.Type)...)
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || name == "timestamp" {
			continue
		}
		s := typeSpec(f.Type, f.Tag)
		s.name = name
		optional := strings.Contains(opts, "omitempty")
		s.required = !optional && f.Type.Kind() != reflect.Pointer && s.kind != kindID
		if optional && f.Type.Kind() == reflect.Pointer {
			s.nullable = false // an omitted field is absent, never null
		}
		if c := f.Tag.Get("required"); c != "" {
			s.variant, s.required = parseCondition(c), true
		} else if c := f.Tag.Get("variant"); c != "" {
			s.variant = parseCondition(c)
		}
		out = append(out, s)
	}
	specs.Store(t, out)
	return out
}

var (
	rawType  = reflect.TypeOf(json.RawMessage(nil))
	timeType = reflect.TypeOf(time.Time{})
)

// rawKinds are what a json.RawMessage field may hold, by its kind tag.
var rawKinds = map[string]fieldSpec{
	"":        {kind: kindAny, nullable: true},
	"value":   {kind: kindValue},
	"object":  {kind: kindObject},
	"id":      {kind: kindID, nullable: true},
	"content": {kind: kindContent, elem: &fieldSpec{kind: kindObject, object: contentPartSpec()}},
}

func typeSpec(t reflect.Type, tag reflect.StructTag) fieldSpec {
	var s fieldSpec
	if t.Kind() == reflect.Pointer {
		s.nullable = true
		t = t.Elem()
	}
	if e := tag.Get("enum"); e != "" {
		s.enum = strings.Split(e, ",")
	}
	if m := tag.Get("min"); m != "" {
		n, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			panic("event: bad min tag " + strconv.Quote(m))
		}
		s.min = &n
	}
	switch {
	case t == rawType && tag.Get("kind") == "message":
		s.kind, s.object = kindObject, messageSpec()
	case t == rawType:
		raw, ok := rawKinds[tag.Get("kind")]
		if !ok {
			panic("event: unknown kind tag " + strconv.Quote(tag.Get("kind")))
		}
		s.kind, s.nullable, s.elem = raw.kind, raw.nullable, raw.elem
	case t == timeType:
		s.kind = kindTime
	case t.Kind() == reflect.String && tag.Get("kind") == "pointer":
		s.kind = kindPointer
	case t.Kind() == reflect.String:
		s.kind = kindString
	case t.Kind() == reflect.Bool:
		s.kind = kindBool
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
		s.kind = kindInteger
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		s.kind = kindNumber
	case t.Kind() == reflect.Map:
		s.kind = kindObject
	case t.Kind() == reflect.Struct:
		s.kind, s.object = kindObject, specOf(t)
	case t.Kind() == reflect.Slice:
		elem := typeSpec(t.Elem(), reflect.StructTag(`kind:"`+tag.Get("kind")+`"`))
		s.kind, s.elem = kindArray, &elem
	}
	return s
}

func validateObject(path string, fields map[string]json.RawMessage, spec []fieldSpec) error {
	for _, f := range spec {
		if f.variant != nil && !f.variant.holds(fields) {
			continue // a field of another variant is unknown here
		}
		v, ok := fields[f.name]
		if !ok {
			if !f.required {
				continue
			}
			if f.variant != nil {
				return fieldError(path+f.name, "missing field %s: want %s when %s is %s", path+f.name, f.kind,
					f.variant.field, strings.Join(f.variant.values, " or "))
			}
			return fieldError(path+f.name, "missing field %s: want %s", path+f.name, f.kind)
		}
		if err := validateValue(path+f.name, v, f); err != nil {
			return err
		}
	}
	return nil
}

func validateValue(path string, v json.RawMessage, f fieldSpec) error {
	v = bytes.TrimSpace(v)
	got := jsonKind(v)
	if got == 'n' {
		if f.nullable {
			return nil
		}
		return fieldError(path, "field %s is null: want %s", path, f.kind)
	}
	if !hasKind(f.kind, got, v) {
		return fieldError(path, "field %s: want %s", path, f.kind)
	}
	if f.enum != nil {
		var s string
		if json.Unmarshal(v, &s) != nil || !slices.Contains(f.enum, s) {
			return fieldError(path, "field %s is %s: want one of %s", path, v, strings.Join(f.enum, ", "))
		}
	}
	switch {
	case got == 'd' && f.min != nil && belowMin(v, *f.min):
		return fieldError(path, "field %s is %s: want at least %d", path, v, *f.min)
	case got == 'o' && f.object != nil:
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(v, &fields); err != nil {
			return fieldError(path, "field %s: want %s", path, f.kind)
		}
		return validateObject(path+".", fields, f.object)
	case got == 'a' && f.elem != nil:
		return validateItems(path, v, f)
	}
	return nil
}

// validateItems checks the items of an array against f.elem, and their number against f.min.
func validateItems(path string, v json.RawMessage, f fieldSpec) error {
	var items []json.RawMessage
	if err := json.Unmarshal(v, &items); err != nil {
		return fieldError(path, "field %s: want %s", path, f.kind)
	}
	if f.min != nil && int64(len(items)) < *f.min {
		return fieldError(path, "field %s has %d items: want at least %d", path, len(items), *f.min)
	}
	for i, item := range items {
		if err := validateValue(fmt.Sprintf("%s[%d]", path, i), item, *f.elem); err != nil {
			return err
		}
	}
	return nil
}

// jsonPointer matches an RFC 6901 JSON Pointer: empty (the whole document) or "/"-led tokens in
// which "~" is only ever "~0" or "~1".
var jsonPointer = regexp.MustCompile(`^(/([^/~]|~[01])*)*$`)

// hasKind reports whether v, a JSON value that jsonKind classifies as got, is of kind k.
func hasKind(k kind, got byte, v json.RawMessage) bool {
	switch k {
	case kindString:
		return got == 's'
	case kindTime, kindPointer:
		var s string
		if got != 's' || json.Unmarshal(v, &s) != nil {
			return false
		}
		if k == kindPointer {
			return jsonPointer.MatchString(s)
		}
		_, err := time.Parse(time.RFC3339Nano, s)
		return err == nil
	case kindInteger:
		return got == 'd' && !bytes.ContainsAny(v, ".eE")
	case kindNumber:
		return got == 'd'
	case kindBool:
		return got == 'b'
	case kindID:
		return got == 's' || got == 'd'
	case kindObject:
		return got == 'o'
	case kindArray:
		return got == 'a'
	case kindContent:
		return got == 's' || got == 'a'
	}
	return true // kindAny, kindValue
}

// belowMin reports whether the JSON integer v is less than least; an integer too large for
// int64 is below it only when negative.
func belowMin(v json.RawMessage, least int64) bool {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return v[0] == '-'
	}
	return n < least
}

// jsonKind classifies a JSON value by its first byte: s(tring), d(igit), b(ool), n(ull),
// o(bject), a(rray).
func jsonKind(v []byte) byte {
	if len(v) == 0 {
		return 0
	}
	switch c := v[0]; {
	case c == '"':
		return 's'
	case c == '-' || c >= '0' && c <= '9':
		return 'd'
	case c == 't' || c == 'f':
		return 'b'
	case c == 'n':
		return 'n'
	case c == '{':
		return 'o'
	case c == '[':
		return 'a'
	}
	return 0
}
