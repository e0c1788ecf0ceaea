package client

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

// Reader reads frames from an event stream.
//
// Lines end in LF or CRLF (eventsd writes LF only); a lone CR does not end a line. A blank
// line ends a frame. Comment lines (starting with ':') are skipped, and blank lines after
// comments alone end no frame, so heartbeat comments never reach the caller. Unknown fields
// are skipped but make a frame: a frame without data is returned with Data empty. A field's
// value loses one leading space.
type Reader struct {
	s *bufio.Scanner
}

// NewReader returns a Reader on r. A single line, with its line end, may be at most maxLine
// bytes (bufio.MaxScanTokenSize when maxLine is 0 or less); a longer one ends the stream with
// bufio.ErrTooLong.
func NewReader(r io.Reader, maxLine int) *Reader {
	if maxLine <= 0 {
		maxLine = bufio.MaxScanTokenSize
	}
	s := bufio.NewScanner(r)
	// The first buffer is no larger than maxLine: a Scanner allows tokens up to the larger of
	// the two.
	s.Buffer(make([]byte, 0, min(4096, maxLine)), maxLine)
	return &Reader{s: s}
}

// Next returns the next frame. It returns io.EOF when the stream ends between frames and
// io.ErrUnexpectedEOF when it ends inside one.
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
