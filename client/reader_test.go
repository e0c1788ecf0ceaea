package client_test

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/eventsd/eventsd/client"
)

func TestReader(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name    string
		in      string
		want    []client.Frame
		wantErr error // after the frames
	}{
		{"empty", "", nil, io.EOF},
		{"one data frame", "id: 7-z\ndata: {\"a\":1}\n\n", []client.Frame{{ID: "7-z", Data: `{"a":1}`}}, io.EOF},
		{"named event", "event: resync\ndata: {}\n\n", []client.Frame{{Event: "resync", Data: "{}"}}, io.EOF},
		{"multi-line data", "data: a\ndata: b\ndata:\ndata: c\n\n", []client.Frame{{Data: "a\nb\n\nc"}}, io.EOF},
		{"two frames", "id: 1\ndata: x\n\nid: 2\ndata: y\n\n", []client.Frame{{ID: "1", Data: "x"}, {ID: "2", Data: "y"}}, io.EOF},
		{"comments skipped", ": heartbeat\n\n: hello\nid: 1\n: inside\ndata: x\n\n: bye\n\n", []client.Frame{{ID: "1", Data: "x"}}, io.EOF},
		{"blank lines between frames", "\n\n\ndata: x\n\n\n\ndata: y\n\n", []client.Frame{{Data: "x"}, {Data: "y"}}, io.EOF},
		{"CRLF line ends", "id: 1\r\ndata: x\r\ndata: y\r\n\r\n", []client.Frame{{ID: "1", Data: "x\ny"}}, io.EOF},
		{"a lone CR ends no line", "data: x\ry\n\n", []client.Frame{{Data: "x\ry"}}, io.EOF},
		{"one leading space dropped", "data:x\ndata:  y\nid:3\n\n", []client.Frame{{ID: "3", Data: "x\n y"}}, io.EOF},
		{"colon in the value", "data: a: b\n\n", []client.Frame{{Data: "a: b"}}, io.EOF},
		{"field without a colon", "data\n\n", []client.Frame{{Data: ""}}, io.EOF},
		{"unknown fields make an empty frame", "retry: 100\nfoo: bar\n\n", []client.Frame{{}}, io.EOF},
		{"event without data", "event: heartbeat\n\n", []client.Frame{{Event: "heartbeat"}}, io.EOF},
		{"last id and event win", "id: 1\nid: 2\nevent: a\nevent: b\ndata: x\n\n", []client.Frame{{ID: "2", Event: "b", Data: "x"}}, io.EOF},
		{"EOF after a full frame without its blank line", "data: x\n", nil, io.ErrUnexpectedEOF},
		{"EOF mid-line", "data: x\n\ndata: y", []client.Frame{{Data: "x"}}, io.ErrUnexpectedEOF},
		{"EOF after a comment", "data: x\n\n: partial", []client.Frame{{Data: "x"}}, io.EOF},
		{"longest line", "data: " + long[:57] + "\n\n", []client.Frame{{Data: long[:57]}}, io.EOF},
		{"line too long", "data: x\n\ndata: " + long + "\n\n", []client.Frame{{Data: "x"}}, bufio.ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte at a time as well as all at once: a frame split across reads reads the same.
			for _, r := range []io.Reader{strings.NewReader(tt.in), iotest.OneByteReader(strings.NewReader(tt.in))} {
				rd := client.NewReader(r, 64)
				for i, want := range tt.want {
					got, err := rd.Next()
					if err != nil || got != want {
						t.Fatalf("Next() #%d on %q = %+v, %v, want %+v", i, tt.in, got, err, want)
					}
				}
				if got, err := rd.Next(); !errors.Is(err, tt.wantErr) || got != (client.Frame{}) {
					t.Fatalf("Next() after the frames of %q = %+v, %v, want %v", tt.in, got, err, tt.wantErr)
				}
			}
		})
	}
}

// FuzzReader reads arbitrary bytes as a stream: it ends only with the documented errors, and
// every frame it returns, written out again, reads back the same.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"id: 1-a\ndata: {\"type\":\"X\"}\n\n",
		"event: resync\ndata: {}\n\n: heartbeat\n\n",
		"data: a\r\ndata: b\r\n\r\n",
		"data: a\rb\n\n",
		"data:x\ndata\nid\n\nevent: e\n\n",
		"data: x\n\ndata: y",
		": c\n\n\n\nretry: 5\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const maxLine = 1 << 10
		rd := client.NewReader(strings.NewReader(string(in)), maxLine)
		for {
			fr, err := rd.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, bufio.ErrTooLong) {
					t.Fatalf("Next() on %q: %v, want io.EOF, io.ErrUnexpectedEOF or bufio.ErrTooLong", in, err)
				}
				return
			}
			if strings.ContainsAny(fr.ID+fr.Event, "\n") {
				t.Fatalf("Next() on %q = %+v: a newline in a single-line field", in, fr)
			}
			if strings.HasSuffix(fr.ID, "\r") || strings.HasSuffix(fr.Event, "\r") || strings.Contains(fr.Data, "\r\n") || strings.HasSuffix(fr.Data, "\r") {
				continue // a CR before a line end cannot be written out: it would end the line
			}
			again, err := client.NewReader(strings.NewReader(encode(fr)), 4*maxLine).Next()
			if err != nil || again != fr {
				t.Fatalf("frame %+v from %q, written as %q, reads back as %+v, %v", fr, in, encode(fr), again, err)
			}
		}
	})
}

// encode writes a frame as a server would.
func encode(f client.Frame) string {
	var b strings.Builder
	if f.ID != "" {
		b.WriteString("id: " + f.ID + "\n")
	}
	if f.Event != "" {
		b.WriteString("event: " + f.Event + "\n")
	}
	for line := range strings.SplitSeq(f.Data, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	b.WriteString("\n")
	return b.String()
}
