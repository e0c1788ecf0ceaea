package sse

import (
	"bytes"
	"strconv"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// Heartbeat frames. Lines end in LF only: stock AG-UI clients split frames on "\n\n".
//
// The official AG-UI client hands every data line to its event schema and fails the run on
// anything else, so the agui channel's heartbeat is an SSE comment, which every SSE parser
// skips.
var (
	heartbeatFrame     = []byte("event: heartbeat\ndata: {\"type\":\"heartbeat\"}\n\n")
	aguiHeartbeatFrame = []byte(": heartbeat\n\n")
)

// heartbeatFor returns the heartbeat frame of a channel.
func heartbeatFor(c routing.Channel) []byte {
	if c == routing.AGUI {
		return aguiHeartbeatFrame
	}
	return heartbeatFrame
}

// frameWriter encodes frames into one reused buffer, so the per-event path does not allocate
// once the buffer has grown to the largest batch. Frames accumulate until reset, so that many
// can go out in one write.
type frameWriter struct {
	buf      bytes.Buffer
	maxEvent int // payloads longer than this are skipped
}

// errSkip reports a payload that must not become a frame.
type errSkip struct{ reason string }

func (e errSkip) Error() string { return "skipped: " + e.reason }

// frames returns the frames encoded since the last reset.
func (fw *frameWriter) frames() []byte { return fw.buf.Bytes() }

// keepFrames is the buffer capacity a frameWriter keeps between batches; a larger one, grown
// for a burst, is given back.
const keepFrames = 4 << 10

// reset empties the buffer.
func (fw *frameWriter) reset() {
	if fw.buf.Cap() > keepFrames {
		fw.buf = bytes.Buffer{}
		return
	}
	fw.buf.Reset()
}

// event appends ev as "id: <cursor>\ndata: <compact JSON>\n\n" and returns that frame. With
// wrap, the data is {"protocol":...,"event":...}, the protocol taken from the subject. A payload
// that is not valid JSON, or too large, gives errSkip and appends nothing.
func (fw *frameWriter) event(ev bus.Event, wrap bool) ([]byte, error) {
	return fw.frame(ev, wrap, true)
}

// frame is event, with the id: line only when withID.
func (fw *frameWriter) frame(ev bus.Event, wrap, withID bool) ([]byte, error) {
	mark := fw.buf.Len()
	if fw.maxEvent > 0 && len(ev.Data) > fw.maxEvent {
		return nil, errSkip{"too_large"}
	}
	b := fw.buf.AvailableBuffer()
	if withID {
		b = append(b, "id: "...)
		b = ev.Cursor.Append(b)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	if wrap {
		p := routing.Protocol(ev.Subject)
		if p == "" {
			return nil, errSkip{"not_contexts"}
		}
		b = append(b, `{"protocol":"`...)
		b = append(b, p...)
		b = append(b, `","event":`...)
	}
	fw.buf.Write(b)
	if ev.Compact {
		fw.buf.Write(ev.Data)
	} else if err := event.Compact(&fw.buf, ev.Data); err != nil {
		// Compact both validates the payload and puts JSON that spans lines on one data line.
		fw.buf.Truncate(mark)
		return nil, errSkip{"not_json"}
	}
	if wrap {
		fw.buf.WriteByte('}')
	}
	fw.buf.WriteString("\n\n")
	return fw.buf.Bytes()[mark:], nil
}

// notice appends the frame that tells a resuming client it may have missed events, and returns
// it. On the agui channel its data is an AG-UI CUSTOM event named "resync", which AG-UI clients
// accept.
func (fw *frameWriter) notice(n *bus.Notice, c routing.Channel, now time.Time) []byte {
	mark := fw.buf.Len()
	b := fw.buf.AvailableBuffer()
	b = append(b, "event: resync\ndata: "...)
	if c == routing.AGUI {
		b = append(b, `{"type":"CUSTOM","timestamp":`...)
		b = strconv.AppendInt(b, now.UnixMilli(), 10)
		b = append(b, `,"name":"resync","value":`...)
	}
	b = append(b, `{"type":"resync","reason":`...)
	b = strconv.AppendQuote(b, n.Reason)
	b = append(b, `,"last_event_id":"`...)
	b = n.Cursor.Append(b)
	b = append(b, `","first_seq":`...)
	b = strconv.AppendUint(b, n.First, 10)
	b = append(b, '}')
	if c == routing.AGUI {
		b = append(b, '}')
	}
	b = append(b, "\n\n"...)
	fw.buf.Write(b)
	return fw.buf.Bytes()[mark:]
}
