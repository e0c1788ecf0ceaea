package sse

import (
	"bufio"
	"io"
	"strings"
)

// Frame is one server-sent event as a client reads it.
type Frame struct {
	ID    string // the id: field; empty when the frame has none
	Event string // the event: field; empty for plain data frames
	Data  string // the data: lines joined by "\n"
}

// Reader reads frames from an event stream, for clients of eventsd (eventsctl, tests).
type Reader struct {
	s *bufio.Scanner
}

// NewReader returns a Reader on r. A single line may be at most maxLine bytes.
func NewReader(r io.Reader, maxLine int) *Reader {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), maxLine)
	return &Reader{s: s}
}

// Next returns the next frame. It returns io.EOF when the stream ends between frames.
func (r *Reader) Next() (Frame, error) {
	var f Frame
	var data []string
	seen := false
	for r.s.Scan() {
		line := r.s.Text()
		if line == "" {
			if seen {
				f.Data = strings.Join(data, "\n")
				return f, nil
			}
			continue
		}
		if line[0] == ':' { // comment
			continue
		}
		seen = true
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "id":
			f.ID = value
		case "event":
			f.Event = value
		case "data":
			data = append(data, value)
		}
	}
	if err := r.s.Err(); err != nil {
		return Frame{}, err
	}
	if seen {
		return Frame{}, io.ErrUnexpectedEOF
	}
	return Frame{}, io.EOF
}
