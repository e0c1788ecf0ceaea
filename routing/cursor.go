package routing

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidCursor is returned for a resume cursor that this server did not write.
var ErrInvalidCursor = errors.New("routing: invalid cursor")

// Cursor is a position in a stream: the sequence of the last event a client received and the
// epoch of the stream it came from. The epoch changes when a stream is deleted and created again,
// which lets the server notice a cursor from an earlier life of the stream.
//
// Its text form, used as the SSE event id, is "<seq>-<epoch>" with the epoch in base 36.
type Cursor struct {
	Seq   uint64
	Epoch uint64
}

// String returns the cursor's text form.
func (c Cursor) String() string {
	return string(c.Append(nil))
}

// Append appends the cursor's text form to b.
func (c Cursor) Append(b []byte) []byte {
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, c.Epoch, 36)
}

// maxCursorLen is longer than any cursor Append writes (20 + 1 + 13).
const maxCursorLen = 40

// ParseCursor parses a cursor's text form.
func ParseCursor(s string) (Cursor, error) {
	if len(s) > maxCursorLen {
		return Cursor{}, fmt.Errorf("%w: %d bytes long", ErrInvalidCursor, len(s))
	}
	seqText, epochText, ok := strings.Cut(s, "-")
	if !ok || !digitsOnly(seqText, 10) || !digitsOnly(epochText, 36) {
		return Cursor{}, fmt.Errorf("%w %q: want <sequence>-<epoch> as sent in an SSE id", ErrInvalidCursor, s)
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w %q: %v", ErrInvalidCursor, s, err)
	}
	epoch, err := strconv.ParseUint(epochText, 36, 64)
	if err != nil {
		return Cursor{}, fmt.Errorf("%w %q: %v", ErrInvalidCursor, s, err)
	}
	return Cursor{Seq: seq, Epoch: epoch}, nil
}

// digitsOnly reports whether s is non-empty, in the canonical lower-case form of base, and
// without a leading zero, so that every cursor has exactly one text form.
func digitsOnly(s string, base int) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case base == 36 && c >= 'a' && c <= 'z':
		default:
			return false
		}
	}
	return true
}
