package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/eventsd/eventsd/internal/nodetest"
	"github.com/eventsd/eventsd/routing"
)

// The AG-UI catalog follows @ag-ui/core; these tests read the package where
// `npm ci --prefix test/agui` installs it, and skip when it is not there.

// aguiCoreVersion is the @ag-ui/core release the AG-UI catalog follows.
const aguiCoreVersion = "1.0.0"

// aguiPackages is the Node project that holds the official AG-UI packages.
var aguiPackages = filepath.Join("..", "test", "agui")

// aguiCoreDir returns the installed @ag-ui/core, after checking that it is the release the
// catalog follows.
func aguiCoreDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(aguiPackages, "node_modules", "@ag-ui", "core")
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("@ag-ui/core is not installed: 'npm ci --prefix test/agui' installs it")
	}
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	if pkg.Version != aguiCoreVersion {
		t.Fatalf("installed @ag-ui/core is %s, the catalog follows %s: bring the catalog to its schemas, then raise aguiCoreVersion", pkg.Version, aguiCoreVersion)
	}
	return dir
}

var (
	eventTypeEnum   = regexp.MustCompile(`(?s)declare enum EventType \{(.*?)\}`)
	eventTypeMember = regexp.MustCompile(`\b[A-Z0-9_]+ = "([A-Z0-9_]+)"`)
)

// TestAGUITypesMatchCore checks the catalog's AG-UI types against the members of the EventType
// enum that @ag-ui/core exports, as its type declarations list them.
func TestAGUITypesMatchCore(t *testing.T) {
	dir := aguiCoreDir(t)
	decls, err := filepath.Glob(filepath.Join(dir, "dist", "*.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, path := range decls {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if m := eventTypeEnum.FindSubmatch(b); m != nil {
			for _, member := range eventTypeMember.FindAllSubmatch(m[1], -1) {
				want = append(want, string(member[1]))
			}
			break
		}
	}
	if len(want) == 0 {
		t.Fatalf("no EventType enum declared in %s", filepath.Join(dir, "dist", "*.d.ts"))
	}
	slices.Sort(want)
	got := Types(routing.AGUI)
	for _, typ := range want {
		if !slices.Contains(got, typ) {
			t.Errorf("@ag-ui/core's EventType has %s, the catalog does not", typ)
		}
	}
	for _, typ := range got {
		if !slices.Contains(want, typ) {
			t.Errorf("the catalog has %s, @ag-ui/core's EventType does not", typ)
		}
	}
}

// runNode runs a Node module script in the project that holds the AG-UI packages, with input as
// JSON on its stdin, and decodes the JSON it prints into out.
func runNode(t *testing.T, script string, input, out any) {
	t.Helper()
	aguiCoreDir(t)
	nodetest.Run(t, aguiPackages, script, input, out, "SUPPRESS_TRANSFORMATION_WARNINGS=") // the warnings are checked
}

// coreFieldsScript prints, for each event type of @ag-ui/core's EventSchema, each field but type
// and timestamp: whether it is required, and whether it accepts each probe value.
const coreFieldsScript = `
import { readFileSync } from "node:fs";
import { EventSchema } from "@ag-ui/core/schemas";
const probes = JSON.parse(readFileSync(0, "utf8"));
const out = {};
for (const event of EventSchema.options) {
  const { type, timestamp, ...fields } = event.shape;
  out[type.def.values[0]] = Object.fromEntries(Object.entries(fields).map(([name, field]) => [name, {
    required: !field.safeParse(undefined).success,
    accepts: probes.map((probe) => field.safeParse(probe).success),
  }]));
}
console.log(JSON.stringify(out));
`

// fieldProbes are JSON values of every kind, tried on every field.
var fieldProbes = []string{`"s"`, `1`, `1.5`, `true`, `{}`, `[]`, `null`, `["s"]`, `[{}]`}

// fieldDepartures are the probes on which the catalog's check of a field is knowingly looser than
// @ag-ui/core's, keyed "TYPE.field probe".
var fieldDepartures = map[string]string{}

type coreField struct {
	Required bool   `json:"required"`
	Accepts  []bool `json:"accepts"`
}

// TestAGUIFieldsMatchCore checks every field of every AG-UI event type against @ag-ui/core's
// schema: the same fields, required alike, accepting the same kinds of JSON value.
func TestAGUIFieldsMatchCore(t *testing.T) {
	probes := make([]json.RawMessage, len(fieldProbes))
	for i, p := range fieldProbes {
		probes[i] = json.RawMessage(p)
	}
	var core map[string]map[string]coreField
	runNode(t, coreFieldsScript, probes, &core)
	for _, typ := range Types(routing.AGUI) {
		if core[typ] == nil {
			t.Errorf("the catalog has %s, @ag-ui/core's EventSchema does not", typ)
		}
	}
	departed := map[string]bool{}
	for typ, fields := range core {
		ev, ok := New(routing.AGUI, typ)
		if !ok {
			t.Errorf("@ag-ui/core's EventSchema has %s, the catalog does not", typ)
			continue
		}
		compareFields(t, typ, specOf(reflect.TypeOf(ev)), fields, departed)
	}
	for key := range fieldDepartures {
		if !departed[key] {
			t.Errorf("fieldDepartures[%q]: the catalog agrees with @ag-ui/core there now; drop the entry", key)
		}
	}
}

// compareFields compares the catalog's fields of one event type with @ag-ui/core's, and notes in
// departed the listed departures it met.
func compareFields(t *testing.T, typ string, specs []fieldSpec, core map[string]coreField, departed map[string]bool) {
	t.Helper()
	for _, s := range specs {
		want, ok := core[s.name]
		if !ok {
			t.Errorf("%s.%s: in the catalog, not in @ag-ui/core", typ, s.name)
			continue
		}
		if s.required != want.Required {
			t.Errorf("%s.%s: required = %v, @ag-ui/core says %v", typ, s.name, s.required, want.Required)
		}
		for i, probe := range fieldProbes {
			got := validateValue(s.name, json.RawMessage(probe), s) == nil
			key := typ + "." + s.name + " " + probe
			switch {
			case got != want.Accepts[i] && fieldDepartures[key] != "":
				departed[key] = true
			case got != want.Accepts[i]:
				t.Errorf("%s.%s accepts %s: %v, @ag-ui/core: %v", typ, s.name, probe, got, want.Accepts[i])
			}
		}
	}
	for name := range core {
		if !slices.ContainsFunc(specs, func(s fieldSpec) bool { return s.name == name }) {
			t.Errorf("%s.%s: in @ag-ui/core, not in the catalog", typ, name)
		}
	}
}

// judgeScript judges each event twice: by @ag-ui/core's EventSchema, and by @ag-ui/client's
// enforce layer, which the official client applies to every event it reads (it strips, with a
// warning, whatever the event's type does not define or it cannot recognise, then parses the rest
// with the schema). It prints the schema's error, the enforce layer's error and its warnings.
const judgeScript = `
import { readFileSync } from "node:fs";
import { EventSchema } from "@ag-ui/core/schemas";
import { enforceEvents } from "@ag-ui/client";
import { lastValueFrom, of } from "rxjs";
const events = JSON.parse(readFileSync(0, "utf8"));
const warnings = [];
console.warn = (...args) => warnings.push(args.join(" "));
const verdicts = [];
for (const event of events) {
  const parsed = EventSchema.safeParse(event);
  warnings.length = 0;
  let enforced = "";
  try {
    await lastValueFrom(enforceEvents(false)(of(event)));
  } catch (err) {
    enforced = String(err?.message ?? err);
  }
  verdicts.push({ schema: parsed.success ? "" : parsed.error.message, enforce: enforced, warnings: [...warnings] });
}
console.log(JSON.stringify(verdicts));
`

// verdict is the official packages' judgement of one event; an empty error is a pass.
type verdict struct {
	Schema   string   `json:"schema"`
	Enforce  string   `json:"enforce"`
	Warnings []string `json:"warnings"`
}

// judge returns the official packages' verdict on each event.
func judge(t *testing.T, events []json.RawMessage) []verdict {
	t.Helper()
	var verdicts []verdict
	runNode(t, judgeScript, events, &verdicts)
	if len(verdicts) != len(events) {
		t.Fatalf("node judged %d events, want %d", len(verdicts), len(events))
	}
	return verdicts
}

// TestAGUIGoldenMatchesCore checks that every AG-UI golden file passes @ag-ui/core's schema and
// that the official client reads it as it is, with nothing stripped.
func TestAGUIGoldenMatchesCore(t *testing.T) {
	aguiCoreDir(t)
	var events []json.RawMessage
	for _, typ := range Types(routing.AGUI) {
		b, err := os.ReadFile(goldenPath(routing.AGUI, typ))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, bytes.TrimSpace(b))
	}
	for i, v := range judge(t, events) {
		if v.Schema != "" || v.Enforce != "" || len(v.Warnings) > 0 {
			t.Errorf("%s: schema error %q, enforce error %q, warnings %q", events[i], oneLine(v.Schema), oneLine(v.Enforce), v.Warnings)
		}
	}
}

// TestAGUICasesMatchCore checks that the catalog and @ag-ui/core's schema agree on which of the
// AG-UI validateCases are valid, save the departures the cases document.
func TestAGUICasesMatchCore(t *testing.T) {
	var events []json.RawMessage
	var cases []int
	for i, tt := range validateCases {
		if tt.channel == routing.AGUI {
			events = append(events, json.RawMessage(tt.in))
			cases = append(cases, i)
		}
	}
	for j, v := range judge(t, events) {
		tt := validateCases[cases[j]]
		ours, theirs := tt.field == "", v.Schema == ""
		switch {
		case ours == theirs && tt.differs != "":
			t.Errorf("%s: the catalog and @ag-ui/core agree now (valid: %v); drop differs %q", tt.in, ours, tt.differs)
		case ours != theirs && tt.differs == "":
			t.Errorf("%s: valid for the catalog: %v, for @ag-ui/core: %v %s", tt.in, ours, theirs, oneLine(v.Schema))
		}
	}
}

// oneLine shortens a multi-line error of the Node packages for a test failure.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}
