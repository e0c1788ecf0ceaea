package bus

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/eventsd/eventsd/routing"
)

// TestStartOf: where a feed starts, for every kind of subscription, in a stream holding events
// 100 to 200 of epoch 7.
func TestStartOf(t *testing.T) {
	pos := position{epoch: 7, first: 100, last: 200}
	since := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC)
	cursor := func(epoch, seq uint64) *routing.Cursor { return &routing.Cursor{Epoch: epoch, Seq: seq} }
	at := func(seq uint64) *uint64 { return &seq }
	tests := []struct {
		name     string
		sub      routing.Subscription
		snapshot *uint64
		want     start
		err      error
	}{
		{name: "live", want: start{live: true, from: 201}},
		{name: "since", sub: routing.Subscription{Since: since}, want: start{since: since}},
		{name: "cursor", sub: routing.Subscription{Cursor: cursor(7, 150)}, want: start{from: 151}},
		{name: "cursor at the last event", sub: routing.Subscription{Cursor: cursor(7, 200)}, want: start{from: 201}},
		{name: "cursor just before the first event", sub: routing.Subscription{Cursor: cursor(7, 99)}, want: start{from: 100}},
		{name: "cursor wins over since", sub: routing.Subscription{Cursor: cursor(7, 150), Since: since}, want: start{from: 151}},
		{name: "cursor expired", sub: routing.Subscription{Cursor: cursor(7, 50)},
			want: start{notice: &Notice{Reason: NoticeCursorExpired, Cursor: *cursor(7, 50), First: 100}}},
		{name: "cursor of another epoch", sub: routing.Subscription{Cursor: cursor(6, 150)},
			want: start{notice: &Notice{Reason: NoticeStreamRecreated, Cursor: *cursor(6, 150), First: 100}}},
		{name: "cursor of another epoch, past the last event", sub: routing.Subscription{Cursor: cursor(6, 500)},
			want: start{notice: &Notice{Reason: NoticeStreamRecreated, Cursor: *cursor(6, 500), First: 100}}},
		{name: "cursor ahead", sub: routing.Subscription{Cursor: cursor(7, 201)}, err: ErrCursorAhead},
		{name: "snapshot behind the stream", snapshot: at(180), want: start{from: 181, skipUntil: 200}},
		{name: "snapshot at the last event", snapshot: at(200), want: start{from: 201, skipUntil: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := startOf(tt.sub, pos, tt.snapshot)
			if !errors.Is(err, tt.err) || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("startOf(%+v, %+v, %v) = %+v, %v; want %+v, %v", tt.sub, pos, tt.snapshot, got, err, tt.want, tt.err)
			}
		})
	}
}
