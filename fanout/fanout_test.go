package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/eventsd/eventsd/routing"
)

// log is an in-memory stream: the stored events, in order, event i at sequence i+1.
type log struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced on every append
	open    int           // readers not closed yet
}

func newLog() *log { return &log{changed: make(chan struct{})} }

func (l *log) append(subject string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq := uint64(len(l.events) + 1)
	l.events = append(l.events, Event{Subject: subject, Cursor: routing.Cursor{Seq: seq, Epoch: 1}, Data: []byte("{}")})
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *log) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.events))
}

// matching lists the sequences after after of the events want follows.
func (l *log) matching(want Want, after uint64) []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var seqs []uint64
	for _, ev := range l.events[min(after, uint64(len(l.events))):] {
		if wants(want, ev.Subject) {
			seqs = append(seqs, ev.Cursor.Seq)
		}
	}
	return seqs
}

// wants reports whether a subscriber with want gets an event on subject.
func wants(want Want, subject string) bool {
	subj, err := routing.ParseSubject(subject)
	if err != nil {
		return false
	}
	return (want.Token == AllUsers || subj.Token == want.Token) &&
		(len(want.Types) == 0 || slices.Contains(want.Types, subj.Type))
}

// reader reads l's events from a sequence on, those of want only, or all of them with a nil
// want (a dispatcher's Source). Events with a subject that names no user are passed over.
type reader struct {
	l           *log
	want        *Want
	pos         uint64 // the last sequence read
	emptyAtOpen bool
}

func (l *log) reader(want *Want, from uint64) *reader {
	r := &reader{l: l, want: want, pos: from - 1}
	l.mu.Lock()
	l.open++
	l.mu.Unlock()
	_, _, found := r.next()
	r.emptyAtOpen = !found
	return r
}

func (r *reader) match(subject string) bool { return r.want == nil || wants(*r.want, subject) }

// next finds the next event after pos, and counts the events after it.
func (r *reader) next() (ev Event, pending uint64, found bool) {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	for _, e := range r.l.events[min(r.pos, uint64(len(r.l.events))):] {
		if !r.match(e.Subject) {
			continue
		}
		if !found {
			ev, found = e, true
		} else {
			pending++
		}
	}
	return ev, pending, found
}

func (r *reader) Empty() (uint64, bool) { return r.pos, r.emptyAtOpen }

func (r *reader) Next(ctx context.Context) (Stored, error) {
	for {
		r.l.mu.Lock()
		changed := r.l.changed
		r.l.mu.Unlock()
		if ev, pending, ok := r.next(); ok {
			r.pos = ev.Cursor.Seq
			_, err := routing.ParseSubject(ev.Subject)
			return Stored{Event: ev, Pending: pending, Pass: err != nil}, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Stored{}, ctx.Err()
		}
	}
}

func (r *reader) Close() {
	r.l.mu.Lock()
	defer r.l.mu.Unlock()
	r.l.open--
}

func subject(user, typ string) string {
	s, err := routing.SubjectFor(routing.AGUI, user, typ)
	if err != nil {
		panic(err)
	}
	return s
}

func token(user string) string {
	tok, err := routing.UserToken(user)
	if err != nil {
		panic(err)
	}
	return tok
}

func seqs(evs []Event) []uint64 {
	var got []uint64
	for _, ev := range evs {
		got = append(got, ev.Cursor.Seq)
	}
	return got
}

// TestGoLiveAheadOfDispatcher: a subscriber that caught up on its Reader past the point the
// dispatcher has reached (its Source was being recreated, say) gets nothing twice when the
// dispatcher catches up in turn.
func TestGoLiveAheadOfDispatcher(t *testing.T) {
	d := NewDispatcher(Config{Limit: 16, ReadAhead: 16})
	s := newSub(t.Context(), d, Want{Token: token("alice")})
	m := d.hold(s)
	d.Dispatch(Stored{Event: Event{Subject: subject("alice", "STEP_STARTED"), Cursor: routing.Cursor{Seq: 4}}})
	if !d.goLive(m, 10) {
		t.Fatal("the dispatcher dropped a subscriber holding one event")
	}
	for seq := range uint64(13) {
		d.Dispatch(Stored{Event: Event{Subject: subject("alice", "STEP_STARTED"), Cursor: routing.Cursor{Seq: seq}}})
	}
	if got, _ := s.Take(nil, 100); !slices.Equal(seqs(got), []uint64{11, 12}) {
		t.Fatalf("after catching up to 10 the subscriber got %v, want [11 12]", seqs(got))
	}
}

// TestJoinLiveBehindDispatcher: a subscriber that joins live gets nothing stored before it
// joined, even from a dispatcher still behind (it has had 5 of the 15 events stored).
func TestJoinLiveBehindDispatcher(t *testing.T) {
	d := NewDispatcher(Config{Limit: 64, ReadAhead: 64})
	d.Dispatch(Stored{Event: Event{Subject: subject("bob", "STEP_STARTED"), Cursor: routing.Cursor{Seq: 5}}, Pending: 10})
	s := d.Join(t.Context(), Want{Token: token("alice")})
	for seq := range uint64(18) {
		d.Dispatch(Stored{Event: Event{Subject: subject("alice", "STEP_STARTED"), Cursor: routing.Cursor{Seq: seq}}})
	}
	if got, _ := s.Take(nil, 100); !slices.Equal(seqs(got), []uint64{16, 17}) {
		t.Fatalf("joined when the stream held 15 events, the subscriber got %v, want [16 17]", seqs(got))
	}
}

// TestSubjectNamingNoUser: an event whose subject names no user reaches no one, not even a
// subscriber to every user's events, and is reported.
func TestSubjectNamingNoUser(t *testing.T) {
	var skipped []error
	d := NewDispatcher(Config{Limit: 4, ReadAhead: 4, Skipped: func(err error) { skipped = append(skipped, err) }})
	s := d.Join(t.Context(), Want{Token: AllUsers})
	d.Dispatch(Stored{Event: Event{Subject: "agui.CUSTOM", Cursor: routing.Cursor{Seq: 1}}})
	if n := s.Len(); n != 0 || len(skipped) != 1 {
		t.Fatalf("after an event on agui.CUSTOM: %d queued, %d reported skipped; want 0 and 1", n, len(skipped))
	}
}

// TestNotifyWithoutQueueLock: a Notify callback may look at its subscriber (it runs without the
// queue's lock), and runs once events wait.
func TestNotifyWithoutQueueLock(t *testing.T) {
	d := NewDispatcher(Config{Limit: 4, ReadAhead: 4})
	s := d.Join(t.Context(), Want{Token: token("alice")})
	var seen []int
	s.Notify(func() { seen = append(seen, s.Len()) })
	d.Dispatch(Stored{Event: Event{Subject: subject("alice", "RUN_STARTED"), Cursor: routing.Cursor{Seq: 1}}})
	if !slices.Equal(seen, []int{1}) {
		t.Fatalf("Notify saw %v waiting, want [1]", seen)
	}
}

// TestNotifyOncePerDrain: a connection is told once when events start to wait, not for each
// event that joins them; once it has taken them all, the next event tells it again, and a take
// that leaves some tells it at once.
func TestNotifyOncePerDrain(t *testing.T) {
	d := NewDispatcher(Config{Limit: 8, ReadAhead: 8})
	s := d.Join(t.Context(), Want{Token: token("alice")})
	calls := 0
	s.Notify(func() { calls++ })
	seq := uint64(0)
	dispatch := func(n int) {
		for range n {
			seq++
			d.Dispatch(Stored{Event: Event{Subject: subject("alice", "CUSTOM"), Cursor: routing.Cursor{Seq: seq}}})
		}
	}
	dispatch(3)
	if calls != 1 {
		t.Fatalf("3 events queued: Notify called %d times, want 1", calls)
	}
	if evs, _ := s.Take(nil, 2); len(evs) != 2 || calls != 2 {
		t.Fatalf("took %d of 3: Notify called %d times, want 2 (one left waits)", len(evs), calls)
	}
	dispatch(1)
	if calls != 2 {
		t.Fatalf("an event joined one waiting: Notify called %d times, want still 2", calls)
	}
	if evs, _ := s.Take(nil, 8); len(evs) != 2 {
		t.Fatalf("took %d, want the 2 waiting", len(evs))
	}
	dispatch(1)
	if calls != 3 {
		t.Fatalf("an event after the queue was drained: Notify called %d times, want 3", calls)
	}
}

// TestRetire: the subscribers of a dispatcher whose Source stopped end with its reason, keeping
// what was queued; one that joins afterwards ends at once.
func TestRetire(t *testing.T) {
	d := NewDispatcher(Config{Limit: 4, ReadAhead: 4})
	s := d.Join(t.Context(), Want{Token: token("alice")})
	d.Dispatch(Stored{Event: Event{Subject: subject("alice", "RUN_STARTED"), Cursor: routing.Cursor{Seq: 1}}})
	errGone := errors.New("source gone")
	d.Retire(errGone)
	if ev, err := s.Next(t.Context()); err != nil || ev.Cursor.Seq != 1 {
		t.Fatalf("after Retire: Next = %v, %v; want the queued event", ev.Cursor, err)
	}
	if _, err := s.Next(t.Context()); !errors.Is(err, errGone) {
		t.Fatalf("after Retire and the queued event: Next error %v, want %v", err, errGone)
	}
	late := d.Join(t.Context(), Want{Token: token("alice")})
	if _, err := late.Next(t.Context()); !errors.Is(err, errGone) {
		t.Fatalf("joining a retired dispatcher: Next error %v, want %v", err, errGone)
	}
}

// TestCloseDuringCatchUp: closing a subscriber whose Reader waits ends its goroutine and closes
// the Reader; Next then says ErrClosed.
func TestCloseDuringCatchUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLog()
		l.append(subject("alice", "RUN_STARTED"))
		d := NewDispatcher(Config{Limit: 4, ReadAhead: 1})
		want := Want{Token: token("alice")}
		want.Open = func(_ context.Context, from uint64) (Reader, error) { return l.reader(&want, from), nil }
		l.append(subject("alice", "RUN_FINISHED")) // the Reader waits for room to queue it
		s, err := d.JoinAt(t.Context(), want, func(ctx context.Context) (Reader, error) { return want.Open(ctx, 1) })
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		s.Close()
		if l.open != 0 {
			t.Fatalf("%d readers open after Close, want 0", l.open)
		}
		if _, err := s.Next(t.Context()); !errors.Is(err, ErrClosed) && err != nil {
			t.Fatalf("Next after Close: %v, want the queued event or ErrClosed", err)
		}
	})
}

// TestJoinAtFailure: a first Reader that cannot open leaves nothing behind on the dispatcher.
func TestJoinAtFailure(t *testing.T) {
	d := NewDispatcher(Config{Limit: 4, ReadAhead: 4})
	errOpen := errors.New("no consumer")
	if _, err := d.JoinAt(t.Context(), Want{Token: token("alice")}, func(context.Context) (Reader, error) { return nil, errOpen }); !errors.Is(err, errOpen) {
		t.Fatalf("JoinAt = %v, want %v", err, errOpen)
	}
	if len(d.members) != 0 {
		t.Fatalf("after a failed JoinAt the dispatcher has %d members, want 0", len(d.members))
	}
}

// BenchmarkDispatch measures handing one event to the subscribers of its user among many.
func BenchmarkDispatch(b *testing.B) {
	for _, conns := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			d := NewDispatcher(Config{Limit: 1, ReadAhead: 1})
			var subs []*Sub
			for range conns {
				subs = append(subs, d.Join(b.Context(), Want{Token: token("alice")}))
			}
			for u := range 10_000 { // other users, so the lookup is a real one
				d.Join(b.Context(), Want{Token: token(fmt.Sprintf("user%d", u))})
			}
			var buf []Event
			data := []byte(`{"type":"TEXT_MESSAGE_CONTENT","timestamp":1776680130123,"messageId":"m","delta":"hi"}`)
			subj := subject("alice", "TEXT_MESSAGE_CONTENT")
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				d.Dispatch(Stored{Event: Event{Subject: subj, Cursor: routing.Cursor{Seq: uint64(i + 1)}, Data: data}})
				for _, s := range subs {
					<-s.Ready()
					buf, _ = s.Take(buf[:0], 1)
				}
			}
		})
	}
}

// TestEndReason: a subscriber ends with the error End gives it, even when its context ends
// afterwards, and with none when its caller's context ends, whatever that context's cause.
func TestEndReason(t *testing.T) {
	d := NewDispatcher(Config{Limit: 4, ReadAhead: 4})
	errGone := errors.New("connection lost")
	ended := d.Join(t.Context(), Want{Token: token("alice")})
	ended.End(errGone)
	ended.Close()
	if err := ended.Err(); !errors.Is(err, errGone) {
		t.Fatalf("ended, then closed: Err() = %v, want %v", err, errGone)
	}
	ctx, cancel := context.WithCancelCause(t.Context())
	left := d.Join(ctx, Want{Token: token("alice")})
	cancel(errors.New("the caller's own reason"))
	if _, err := left.Next(t.Context()); !errors.Is(err, ErrClosed) {
		t.Fatalf("caller's context ended: Next error %v, want ErrClosed", err)
	}
}
