package fanout

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"testing/synctest"
)

var errRestart = errors.New("source restarted")

// plane is a stream, its dispatcher and the clients following it, for the property test.
type plane struct {
	t       *testing.T
	rnd     *rand.Rand
	log     *log
	d       *Dispatcher
	stopRun context.CancelFunc
	runDone chan struct{}
	clients []*client
	reopens atomic.Int64 // Readers opened to catch up again, after a subscriber fell behind
}

// client is one connection and its resumes: what it has been given, in order, across every
// subscriber it had.
type client struct {
	want  Want
	sub   *Sub
	after uint64 // it gets every event it wants after this sequence
	got   []uint64
}

func (p *plane) start() {
	after := p.log.last() // a new Source starts at the next event stored
	p.d = NewDispatcher(Config{Limit: 3, ReadAhead: 2, After: after})
	src := p.log.reader(nil, after+1)
	ctx, stop := context.WithCancel(p.t.Context())
	p.stopRun, p.runDone = stop, make(chan struct{})
	go func() {
		defer close(p.runDone)
		defer src.Close()
		if err := p.d.Run(ctx, src); err != nil {
			p.t.Errorf("Run: %v", err)
		}
	}()
}

// restart stops the Source; its subscribers end, and a new dispatcher serves the stream.
func (p *plane) restart() {
	p.stopRun()
	<-p.runDone
	p.d.Retire(errRestart)
	p.start()
}

var users = []string{"alice", "bob", "carol"}

func (p *plane) publish() {
	for range 1 + p.rnd.IntN(4) {
		switch p.rnd.IntN(10) {
		case 0:
			p.log.append("agui.CUSTOM") // names no user
		default:
			p.log.append(subject(users[p.rnd.IntN(len(users))], []string{"RUN_STARTED", "STEP_STARTED"}[p.rnd.IntN(2)]))
		}
	}
}

func (p *plane) join() {
	c := &client{want: Want{Token: AllUsers}}
	if p.rnd.IntN(5) > 0 {
		c.want.Token = token(users[p.rnd.IntN(len(users))])
	}
	if p.rnd.IntN(4) == 0 {
		c.want.Types = []string{"STEP_STARTED"}
	}
	c.want.Open = func(_ context.Context, from uint64) (Reader, error) {
		p.reopens.Add(1)
		return p.log.reader(&c.want, from), nil
	}
	if p.rnd.IntN(2) == 0 {
		c.sub = p.d.Join(p.t.Context(), c.want)
		c.after = c.sub.q.lastQueued() // the head it joined at
	} else {
		c.after = uint64(p.rnd.IntN(int(p.log.last()) + 1))
		p.resumeClient(c)
	}
	p.clients = append(p.clients, c)
}

// resumeClient subscribes c again after the last event it got.
func (p *plane) resumeClient(c *client) {
	from := c.after + 1
	if len(c.got) > 0 {
		from = c.got[len(c.got)-1] + 1
	}
	sub, err := p.d.JoinAt(p.t.Context(), c.want, func(context.Context) (Reader, error) { return p.log.reader(&c.want, from), nil })
	if err != nil {
		p.t.Fatalf("JoinAt: %v", err)
	}
	c.sub = sub
}

// take has client c take up to max events, checks them, and resumes it if its subscriber
// ended.
func (p *plane) take(c *client, max int) int {
	evs, more := c.sub.Take(nil, max)
	for _, ev := range evs {
		p.check(c, ev.Cursor.Seq)
		c.got = append(c.got, ev.Cursor.Seq)
	}
	if !more {
		if err := c.sub.Err(); !errors.Is(err, errRestart) {
			p.t.Fatalf("a subscriber ended with %v, want %v", err, errRestart)
		}
		c.sub.Close()
		p.resumeClient(c)
	}
	return len(evs)
}

// check fails unless seq is the next event c wants after what it got: in order, once, with no
// gap.
func (p *plane) check(c *client, seq uint64) {
	last := c.after
	if len(c.got) > 0 {
		last = c.got[len(c.got)-1]
	}
	next := p.log.matching(c.want, last)
	if len(next) == 0 || next[0] != seq {
		p.t.Fatalf("client %+v after %d got %d, want the next of %v", c.want.Token, last, seq, next)
	}
}

func (p *plane) leave() {
	i := p.rnd.IntN(len(p.clients))
	p.clients[i].sub.Close()
	p.clients = slices.Delete(p.clients, i, i+1)
}

// step does one random thing and lets every goroutine settle.
func (p *plane) step() {
	switch n := p.rnd.IntN(20); {
	case n < 6:
		p.publish()
	case n < 9 || len(p.clients) == 0:
		p.join()
	case n < 17:
		c := p.clients[p.rnd.IntN(len(p.clients))]
		p.take(c, 1+p.rnd.IntN(4))
	case n < 19:
		p.leave()
	default:
		p.restart()
	}
	synctest.Wait()
}

// drain has every client take until nothing moves, then checks it got every event it wants.
func (p *plane) drain() {
	for moved := true; moved; {
		moved = false
		for _, c := range p.clients {
			if p.take(c, 100) > 0 {
				moved = true
			}
		}
		synctest.Wait()
	}
	for _, c := range p.clients {
		last := c.after
		if len(c.got) > 0 {
			last = c.got[len(c.got)-1]
		}
		if missed := p.log.matching(c.want, last); len(missed) > 0 {
			p.t.Fatalf("client %s after %d never got %v", c.want.Token, last, missed)
		}
	}
}

// TestEveryEventOnceInOrder interleaves, at random but repeatably, publishes, joins (live and
// from the past), slow takes that overflow the queues, leaves and Source restarts, and checks
// that every client gets every event it wants once, in order, across its resumes, and that
// nothing is left running or open.
func TestEveryEventOnceInOrder(t *testing.T) {
	var reopens int64
	defer func() {
		if reopens == 0 {
			t.Error("no subscriber fell behind: the test does not exercise catching up again")
		}
	}()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &plane{t: t, rnd: rand.New(rand.NewPCG(seed, 1)), log: newLog()}
				p.start()
				for range 250 {
					p.step()
				}
				p.drain()
				for _, c := range p.clients {
					c.sub.Close()
				}
				p.stopRun()
				<-p.runDone
				reopens += p.reopens.Load()
				if p.log.open != 0 {
					t.Fatalf("%d readers still open", p.log.open)
				}
			})
		})
	}
}
