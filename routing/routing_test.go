package routing

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestUserToken(t *testing.T) {
	tests := []struct {
		name, user, want string
	}{
		{"plain", "alice", "alice"},
		{"dash and underscore", "a-b_C9", "a-b_C9"},
		{"email", "alice@example.com", "~YWxpY2VAZXhhbXBsZS5jb20"},
		{"dot", "a.b", "~YS5i"},
		{"star", "*", "~Kg"},
		{"gt", ">", "~Pg"},
		{"space", "a b", "~YSBi"},
		{"tilde", "~alice", "~fmFsaWNl"},
		{"unicode", "ünï", "~w7xuw68"},
		{"64 chars", strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"65 chars", strings.Repeat("a", 65), "~" + strings.Repeat("YWFh", 21) + "YWE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := UserToken(tt.user)
			if err != nil || got != tt.want {
				t.Fatalf("UserToken(%q) = %q, %v, want %q", tt.user, got, err, tt.want)
			}
			back, err := UserFromToken(got)
			if err != nil || back != tt.user {
				t.Fatalf("UserFromToken(%q) = %q, %v, want %q", got, back, err, tt.user)
			}
		})
	}
}

func TestUserTokenRejects(t *testing.T) {
	for name, user := range map[string]string{
		"empty":        "",
		"invalid utf8": "a\xffb",
		"too long":     strings.Repeat("x", MaxUserLen+1),
	} {
		if got, err := UserToken(user); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("%s: UserToken(%q) = %q, %v, want ErrInvalidUser", name, user, got, err)
		}
	}
	for _, tok := range []string{"", "~", "a.b", "~YWxpY2U", "~YS5i=", "~!!", strings.Repeat("a", 65)} {
		if got, err := UserFromToken(tok); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("UserFromToken(%q) = %q, %v, want ErrInvalidUser", tok, got, err)
		}
	}
}

func FuzzUserToken(f *testing.F) {
	for _, s := range []string{"alice", "a.b", "*", ">", " ", "~x", "ü", strings.Repeat("a", 64), strings.Repeat("a", 65)} {
		f.Add(s, "alice")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ta, errA := UserToken(a)
		tb, errB := UserToken(b)
		if errA != nil {
			return
		}
		if strings.ContainsAny(ta, ".*> \t\r\n") {
			t.Fatalf("UserToken(%q) = %q: holds subject syntax", a, ta)
		}
		back, err := UserFromToken(ta)
		if err != nil || back != a {
			t.Fatalf("UserFromToken(UserToken(%q)) = %q, %v", a, back, err)
		}
		if errB == nil && a != b && ta == tb {
			t.Fatalf("UserToken(%q) == UserToken(%q) == %q", a, b, ta)
		}
	})
}

func TestSubjectFor(t *testing.T) {
	tests := []struct {
		channel Channel
		user    string
		typ     string
		want    string
	}{
		{AGUI, "alice", "RUN_STARTED", "agui.alice.RUN_STARTED"},
		{A2A, "alice", "TASK_SUBMITTED", "a2a.alice.TASK_SUBMITTED"},
		{System, "alice", "CONTEXT_CREATED", "context.system.alice.CONTEXT_CREATED"},
		{Analytics, "a@b", "PAGE_VIEW", "analytics.~YUBi.PAGE_VIEW"},
	}
	for _, tt := range tests {
		got, err := SubjectFor(tt.channel, tt.user, tt.typ)
		if err != nil || got != tt.want {
			t.Errorf("SubjectFor(%q, %q, %q) = %q, %v, want %q", tt.channel, tt.user, tt.typ, got, err, tt.want)
		}
	}
	for _, bad := range []struct {
		channel   Channel
		user, typ string
		want      error
	}{
		{Contexts, "alice", "X", ErrUnknownChannel},
		{"nope", "alice", "X", ErrUnknownChannel},
		{AGUI, "", "X", ErrInvalidUser},
		{AGUI, "alice", "run_started", ErrInvalidType},
		{AGUI, "alice", "A.B", ErrInvalidType},
		{AGUI, "alice", "*", ErrInvalidType},
		{AGUI, "alice", ">", ErrInvalidType},
		{AGUI, "alice", "", ErrInvalidType},
		{AGUI, "alice", strings.Repeat("A", MaxTypeLen+1), ErrInvalidType},
	} {
		if got, err := SubjectFor(bad.channel, bad.user, bad.typ); !errors.Is(err, bad.want) {
			t.Errorf("SubjectFor(%q, %q, %q) = %q, %v, want %v", bad.channel, bad.user, bad.typ, got, err, bad.want)
		}
	}
}

func TestSubscriptionFilters(t *testing.T) {
	tests := []struct {
		sub        Subscription
		stream     string
		wantFilter string
	}{
		{Subscription{Channel: AGUI, User: "alice"}, StreamAGUI, "agui.alice.*"},
		{Subscription{Channel: A2A, User: "a.b"}, StreamA2A, "a2a.~YS5i.*"},
		{Subscription{Channel: Contexts, User: "alice"}, StreamContext, "context.*.alice.*"},
		{Subscription{Channel: Analytics, User: "alice"}, StreamAnalytics, "analytics.alice.*"},
		{Subscription{Channel: AGUI, User: "alice", Types: []string{"A", "B", "A"}}, StreamAGUI, "agui.alice.A agui.alice.B"},
		{Subscription{Channel: Contexts, User: ">", Types: []string{"X"}}, StreamContext, "context.*.~Pg.X"},
		{Subscription{Channel: A2A, AllUsers: true}, StreamA2A, "a2a.*.*"},
	}
	for _, tt := range tests {
		stream, err := tt.sub.Stream()
		if err != nil || stream != tt.stream {
			t.Errorf("%+v.Stream() = %q, %v, want %q", tt.sub, stream, err, tt.stream)
		}
		filters, err := tt.sub.Filters()
		if got := strings.Join(filters, " "); err != nil || got != tt.wantFilter {
			t.Errorf("%+v.Filters() = %q, %v, want %q", tt.sub, got, err, tt.wantFilter)
		}
	}
	for _, bad := range []Subscription{
		{Channel: System, User: "alice"},
		{Channel: AGUI, User: ""},
		{Channel: AGUI, User: "alice", Types: []string{"*"}},
		{Channel: AGUI, User: "alice", Types: []string{"A.>"}},
	} {
		if f, err := bad.Filters(); err == nil {
			t.Errorf("%+v.Filters() = %q, want an error", bad, f)
		}
	}
}

func TestProtocol(t *testing.T) {
	for subject, want := range map[string]string{
		"context.agui.alice.X":   "agui",
		"context.a2a.alice.X":    "a2a",
		"context.system.alice.X": "system",
		"agui.alice.X":           "",
		"context.other.alice.X":  "",
		"context":                "",
	} {
		if got := Protocol(subject); got != want {
			t.Errorf("Protocol(%q) = %q, want %q", subject, got, want)
		}
	}
}

func TestCursor(t *testing.T) {
	for _, c := range []Cursor{{0, 0}, {1, 1}, {42, 1776680130123456789}, {1<<64 - 1, 1<<64 - 1}} {
		got, err := ParseCursor(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCursor(%q) = %+v, %v, want %+v", c.String(), got, err, c)
		}
	}
	for _, s := range []string{"", "-", "1", "1-", "-1", "-1-a", "01-a", "1-0a", "1-A", "x-1", "1-1-1", "18446744073709551616-1", " 1-1", "1-1\n", strings.Repeat("9", 50)} {
		if got, err := ParseCursor(s); !errors.Is(err, ErrInvalidCursor) {
			t.Errorf("ParseCursor(%q) = %+v, %v, want ErrInvalidCursor", s, got, err)
		}
	}
}

func FuzzParseCursor(f *testing.F) {
	for _, s := range []string{"1-1", "0-0", "42-abc", "-1", "1--1", "99999999999999999999-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCursor(s)
		if err != nil {
			return
		}
		if c.String() != s {
			t.Fatalf("ParseCursor(%q).String() = %q: not canonical", s, c.String())
		}
	})
}

func ExampleSubjectFor() {
	s, _ := SubjectFor(AGUI, "alice@example.com", "RUN_STARTED")
	fmt.Println(s)
	// Output: agui.~YWxpY2VAZXhhbXBsZS5jb20.RUN_STARTED
}

func ExampleSubscription_Filters() {
	f, _ := Subscription{Channel: Contexts, User: "alice", Types: []string{"RUN_STARTED"}}.Filters()
	fmt.Println(f)
	// Output: [context.*.alice.RUN_STARTED]
}

func BenchmarkCursor(b *testing.B) {
	c := Cursor{Seq: 123456789, Epoch: 1776680130123456789}
	buf := make([]byte, 0, 64)
	text := c.String()
	b.ReportAllocs()
	for b.Loop() {
		buf = c.Append(buf[:0])
		if _, err := ParseCursor(text); err != nil {
			b.Fatal(err)
		}
	}
}

func TestParseSubject(t *testing.T) {
	for _, tc := range []struct {
		subject string
		want    Subject
	}{
		{"agui.alice.RUN_STARTED", Subject{Channel: AGUI, Token: "alice", Type: "RUN_STARTED"}},
		{"a2a.bob.TASK_SUBMITTED", Subject{Channel: A2A, Token: "bob", Type: "TASK_SUBMITTED"}},
		{"analytics.alice.PAGE_VIEW", Subject{Channel: Analytics, Token: "alice", Type: "PAGE_VIEW"}},
		{"context.system.alice.CONTEXT_CREATED", Subject{Channel: System, Token: "alice", Type: "CONTEXT_CREATED"}},
		{"context.agui.alice.CUSTOM", Subject{Channel: AGUI, Token: "alice", Type: "CUSTOM", Fanned: true}},
		{"context.a2a.~YWxpY2VAZXhhbXBsZS5jb20.AGENT_MESSAGE", Subject{Channel: A2A, Token: "~YWxpY2VAZXhhbXBsZS5jb20", Type: "AGENT_MESSAGE", Fanned: true}},
	} {
		got, err := ParseSubject(tc.subject)
		if err != nil || got != tc.want {
			t.Errorf("ParseSubject(%q) = %+v, %v, want %+v", tc.subject, got, err, tc.want)
		}
	}
	for _, subject := range []string{
		"", "agui", "agui.", "agui.CUSTOM", "agui.acme.alice.CUSTOM", "agui.alice.custom", "agui..CUSTOM",
		"agui.alice.", "agui.*.CUSTOM", "agui.alice.>", "context.CUSTOM", "context.agui.CUSTOM",
		"context.other.alice.CUSTOM", "context.system.a.b.CUSTOM", "runs.alice.CUSTOM",
		"agui.~YWxpY2U.CUSTOM", // "alice" base64url: a plain id never takes the ~ form
		"agui.~!!.CUSTOM", "agui.~.CUSTOM", "AGUI.alice.CUSTOM",
	} {
		if got, err := ParseSubject(subject); !errors.Is(err, ErrInvalidSubject) {
			t.Errorf("ParseSubject(%q) = %+v, %v, want ErrInvalidSubject", subject, got, err)
		}
	}
	// Every subject SubjectFor writes parses back to what it was made of.
	for _, user := range []string{"alice", "alice@example.com", strings.Repeat("x", 65), "日本"} {
		for _, c := range []Channel{AGUI, A2A, System, Analytics} {
			subject, err := SubjectFor(c, user, "SOME_TYPE")
			if err != nil {
				t.Fatal(err)
			}
			tok, _ := UserToken(user)
			if got, err := ParseSubject(subject); err != nil || got != (Subject{Channel: c, Token: tok, Type: "SOME_TYPE"}) {
				t.Errorf("ParseSubject(%q) = %+v, %v", subject, got, err)
			}
		}
	}
}

// FuzzParseSubject: whatever a producer publishes on, a subject that parses is exactly the one
// SubjectFor writes for its user and type (or the fan-in's copy of it), so no other spelling
// can reach a user.
func FuzzParseSubject(f *testing.F) {
	for _, s := range []string{"agui.alice.RUN_STARTED", "context.a2a.~YWxpY2VAZXhhbXBsZS5jb20.X", "agui.acme.alice.X", "context.system.a.B", "agui.~YWxpY2U.X"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		s, err := ParseSubject(subject)
		if err != nil {
			return
		}
		user, err := UserFromToken(s.Token)
		if err != nil {
			t.Fatalf("ParseSubject(%q) gave token %q, which names no user: %v", subject, s.Token, err)
		}
		again, err := SubjectFor(s.Channel, user, s.Type)
		if err != nil {
			t.Fatalf("ParseSubject(%q) = %+v, but SubjectFor refuses it: %v", subject, s, err)
		}
		if s.Fanned {
			again = "context." + again
		}
		if again != subject {
			t.Fatalf("ParseSubject(%q) = %+v, which SubjectFor writes as %q", subject, s, again)
		}
	})
}
