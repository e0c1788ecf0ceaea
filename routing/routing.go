// Package routing names everything the event plane routes by: channels, user tokens, subjects,
// stream configurations, the context fan-in mappings and resume cursors. It is pure: no
// connection, no I/O, so every rule about who may see what is testable on its own.
package routing

import (
	"errors"
	"fmt"
	"strings"
)

// Channel is a kind of event traffic. Producers publish on agui, a2a, system and analytics;
// SSE clients follow agui, a2a, contexts and analytics.
type Channel string

// The channels of the event plane.
const (
	AGUI      Channel = "agui"
	A2A       Channel = "a2a"
	System    Channel = "system"
	Analytics Channel = "analytics"
	Contexts  Channel = "contexts"
)

// Stream names, one per stream the plane keeps.
const (
	StreamAGUI      = "AGUI"
	StreamA2A       = "A2A"
	StreamContext   = "CONTEXT"
	StreamAnalytics = "ANALYTICS"
	// StreamRuns is the work queue of requests for agents: runs.<agent>.<user token> (AG-UI
	// runs) and tasks.<agent>.<user token> (A2A messages).
	StreamRuns = "RUNS"
)

// Sentinel errors, wrapped with the offending value.
var (
	// ErrUnknownChannel is returned for a channel name the operation does not accept.
	ErrUnknownChannel = errors.New("routing: unknown channel")
	// ErrInvalidType is returned for an event type that is not [A-Z0-9_]+ of at most 128 bytes.
	ErrInvalidType = errors.New("routing: invalid event type")
)

// MaxTypeLen bounds an event type, which becomes one subject token.
const MaxTypeLen = 128

// ParsePublishChannel returns the channel a producer may publish on by its name.
func ParsePublishChannel(name string) (Channel, error) {
	switch c := Channel(name); c {
	case AGUI, A2A, System, Analytics:
		return c, nil
	}
	return "", fmt.Errorf("%w %q: want agui, a2a, system or analytics", ErrUnknownChannel, name)
}

// ParseStreamChannel returns the channel an SSE client may follow by its name.
func ParseStreamChannel(name string) (Channel, error) {
	switch c := Channel(name); c {
	case AGUI, A2A, Contexts, Analytics:
		return c, nil
	}
	return "", fmt.Errorf("%w %q: want agui, a2a, contexts or analytics", ErrUnknownChannel, name)
}

// ValidateType reports whether t is a valid event type: SCREAMING_SNAKE_CASE, [A-Z0-9_]+.
// A valid type can never be a wildcard or span subject tokens.
func ValidateType(t string) error {
	if t == "" || len(t) > MaxTypeLen {
		return fmt.Errorf("%w %q: want 1 to %d characters of A-Z, 0-9 and _", ErrInvalidType, t, MaxTypeLen)
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("%w %q: want only A-Z, 0-9 and _", ErrInvalidType, t)
		}
	}
	return nil
}

// subjectPrefix is the part of a published subject before the user token.
func subjectPrefix(c Channel) (string, error) {
	switch c {
	case AGUI:
		return "agui.", nil
	case A2A:
		return "a2a.", nil
	case System:
		return "context.system.", nil
	case Analytics:
		return "analytics.", nil
	}
	return "", fmt.Errorf("%w %q: want agui, a2a, system or analytics", ErrUnknownChannel, c)
}

// SubjectFor returns the subject an event of type typ for user is published on in channel c.
func SubjectFor(c Channel, user, typ string) (string, error) {
	prefix, err := subjectPrefix(c)
	if err != nil {
		return "", err
	}
	tok, err := UserToken(user)
	if err != nil {
		return "", err
	}
	if err := ValidateType(typ); err != nil {
		return "", err
	}
	return prefix + tok + "." + typ, nil
}

// StreamFor returns the stream that holds the events of channel c, published or followed.
func StreamFor(c Channel) (string, error) {
	switch c {
	case AGUI:
		return StreamAGUI, nil
	case A2A:
		return StreamA2A, nil
	case System, Contexts:
		return StreamContext, nil
	case Analytics:
		return StreamAnalytics, nil
	}
	return "", fmt.Errorf("%w %q", ErrUnknownChannel, c)
}

// Protocol names the protocol of an event on the contexts stream, from its subject:
// "agui", "a2a" or "system"; "" for a subject outside the contexts stream. It only labels: the
// bus has checked every subject it delivers with ParseSubject, so this looks at the prefix.
func Protocol(subject string) string {
	rest, ok := strings.CutPrefix(subject, "context.")
	if !ok {
		return ""
	}
	p, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	switch p {
	case "agui", "a2a", "system":
		return p
	}
	return ""
}

// ErrInvalidSubject is returned for a subject that is not the subject of one user's event.
var ErrInvalidSubject = errors.New("routing: invalid subject")

// Subject is an event's subject taken apart.
type Subject struct {
	// Channel is the channel the event was published on: agui, a2a, system or analytics.
	Channel Channel
	// Token is the user token, canonical: UserFromToken accepts it.
	Token string
	// Type is the event type.
	Type string
	// Fanned is set for the context fan-in's copy of an AG-UI or A2A event
	// (context.agui.<token>.<TYPE>, context.a2a.<token>.<TYPE>).
	Fanned bool
}

// ParseSubject takes apart the subject of a stored event. It accepts exactly
// <channel>.<user token>.<TYPE> as SubjectFor writes it, and the context fan-in's
// context.agui.<token>.<TYPE> and context.a2a.<token>.<TYPE>; anything else (a missing or extra
// token, a token UserToken would not write, a type that is not [A-Z0-9_]+) reaches no one, on
// every delivery path.
func ParseSubject(subject string) (Subject, error) {
	var s Subject
	rest := subject
	switch {
	case cutPrefix(&rest, "agui."):
		s.Channel = AGUI
	case cutPrefix(&rest, "a2a."):
		s.Channel = A2A
	case cutPrefix(&rest, "analytics."):
		s.Channel = Analytics
	case cutPrefix(&rest, "context.system."):
		s.Channel = System
	case cutPrefix(&rest, "context.agui."):
		s.Channel, s.Fanned = AGUI, true
	case cutPrefix(&rest, "context.a2a."):
		s.Channel, s.Fanned = A2A, true
	default:
		return Subject{}, fmt.Errorf("%w %q: unknown prefix", ErrInvalidSubject, subject)
	}
	tok, typ, ok := strings.Cut(rest, ".")
	if !ok || !canonicalToken(tok) || ValidateType(typ) != nil {
		return Subject{}, fmt.Errorf("%w %q: want <channel>.<user token>.<TYPE>", ErrInvalidSubject, subject)
	}
	s.Token, s.Type = tok, typ
	return s, nil
}

func cutPrefix(s *string, prefix string) bool {
	rest, ok := strings.CutPrefix(*s, prefix)
	if ok {
		*s = rest
	}
	return ok
}

// Follows returns the channel an SSE client follows to get the events of a stream.
func Follows(stream string) (Channel, error) {
	switch stream {
	case StreamAGUI:
		return AGUI, nil
	case StreamA2A:
		return A2A, nil
	case StreamContext:
		return Contexts, nil
	case StreamAnalytics:
		return Analytics, nil
	}
	return "", fmt.Errorf("%w: no channel follows stream %q", ErrUnknownChannel, stream)
}
