// Package agentrt is the Go helper for agent runtimes: processes that serve an agent by taking
// its run requests from the RUNS work queue, one runtime of several per request, keeping each
// request alive while they work, and publishing the run's AG-UI events for the user who asked,
// attributed to the run's thread.
package agentrt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// Config configures a runtime. Agent and Bus are required.
type Config struct {
	// Agent is the agent the runtime serves: 1 to 64 characters of [A-Za-z0-9_-].
	Agent string
	// Bus is the runtime's connection to NATS (bus.Connect); Serve does not close it.
	Bus *bus.Bus
	// Concurrency bounds the runs handled at once; a runtime takes no request it cannot start
	// at once. Default 8.
	Concurrency int
	// AckWait is how long a run may go without a keep-alive before the server counts its
	// runtime as lost; default bus.DefaultRunAckWait. Keep-alives go out five times as often.
	AckWait time.Duration
	// FinishTimeout bounds the publishing of a run's last event and the acknowledgement of its
	// request after the handler returns; default 5s.
	FinishTimeout time.Duration
	// Logger receives what goes wrong outside a handler; default discards.
	Logger *slog.Logger
	// Description says what the agent does: its A2A agent card carries it (ServeTasks).
	Description string
}

// ErrNoBus is returned by Serve when Config has no Bus.
var ErrNoBus = errors.New("agentrt: no bus")

// Handler runs one run: it publishes the run's events with run.Emit and returns when the run
// is over. Serve publishes RUN_STARTED before it, and after it RUN_FINISHED, or RUN_ERROR with
// the error's text when it returns one. ctx ends when the runtime stops (the run then ends in
// RUN_ERROR saying so), or when the node that follows the run ended it (it counted the runtime
// lost, or the run went past its time: the node has published its end, and Serve publishes
// nothing more).
type Handler func(ctx context.Context, run *Run) error

// Run is one run a runtime has taken.
type Run struct {
	taken *bus.TakenRun
	req   bus.RunRequest
}

// Agent is the agent asked to run.
func (r *Run) Agent() string { return r.req.Agent }

// User is the user who asked for the run, and who receives its events.
func (r *Run) User() string { return r.req.User }

// ThreadID is the AG-UI thread of the run.
func (r *Run) ThreadID() string { return r.req.ThreadID }

// RunID is the AG-UI run id.
func (r *Run) RunID() string { return r.req.RunID }

// RawInput is the RunAgentInput as the client sent it.
func (r *Run) RawInput() json.RawMessage { return r.req.Input }

// Input decodes the RunAgentInput.
func (r *Run) Input() (event.RunAgentInput, error) {
	var in event.RunAgentInput
	if err := json.Unmarshal(r.req.Input, &in); err != nil {
		return in, fmt.Errorf("agentrt: run input: %w", err)
	}
	return in, nil
}

// Emit publishes an AG-UI event of the run, with the run's threadId and runId.
func (r *Run) Emit(ctx context.Context, ev event.Event) error {
	_, err := r.taken.Publish(ctx, ev)
	return err
}

// maxInputEcho bounds the run input that RUN_STARTED carries: the thread's view takes the
// conversation's messages from it, so that a page refreshed later shows the user's messages too;
// a larger input is left out, so that RUN_STARTED stays well within what a stream writes.
const maxInputEcho = 256 << 10

// started is the run's RUN_STARTED: with its input (as AG-UI's RUN_STARTED.input), unless the
// event would then be over maxInputEcho, or the input cannot be read.
func (r *Run) started() event.RunStarted {
	var ev event.RunStarted
	if len(r.req.Input) > maxInputEcho {
		return ev
	}
	in, err := r.Input()
	if err != nil {
		return ev
	}
	ev.Input = &in
	if b, err := event.Encode(ev, time.Now()); err != nil || len(b) > maxInputEcho {
		ev.Input = nil // as encoded (escaped), over the bound after all
	}
	return ev
}

// Serve takes the agent's requests until ctx is done and runs h for each, at most
// Config.Concurrency at once. While NATS or the queue is away it waits (bus.RunQueue.Next). It
// returns nil once ctx is done, or an error once the connection is closed, in both cases after
// every run it started has ended.
func Serve(ctx context.Context, cfg Config, h Handler) error {
	return serve(ctx, cfg, routing.Runs, func(s *server, ctx context.Context, t *bus.TakenRun) {
		run := &Run{taken: t, req: t.Request()}
		s.handle(ctx, t, run.started(), func(ctx context.Context) error { return h(ctx, run) }, runEnd)
	})
}

// runEnd is the last event of a run that ended with err (stopping: the runtime stops).
func runEnd(err error, stopping, _ bool) event.Event {
	switch {
	case err != nil && stopping:
		return event.RunError{Message: "the agent's runtime stopped"}
	case err != nil:
		return event.RunError{Message: err.Error()}
	}
	return event.RunFinished{}
}

// serve takes the agent's requests from queue until ctx is done and handles each with handle,
// at most Config.Concurrency at once.
func serve(ctx context.Context, cfg Config, queue routing.Queue, handle func(*server, context.Context, *bus.TakenRun)) error {
	s, err := newServer(cfg)
	if err != nil {
		return err
	}
	q, err := cfg.Bus.RunQueue(ctx, cfg.Agent, bus.QueueConfig{Queue: queue, AckWait: cfg.AckWait, Description: cfg.Description})
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, s.cfg.Concurrency)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		t, err := q.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("agentrt: agent %s: %w", cfg.Agent, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			handle(s, ctx, t)
		}()
	}
}

// server is what Serve's runs share.
type server struct {
	cfg Config
	log *slog.Logger
}

func newServer(cfg Config) (*server, error) {
	if cfg.Bus == nil {
		return nil, ErrNoBus
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.FinishTimeout <= 0 {
		cfg.FinishTimeout = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &server{cfg: cfg, log: log.With("agent", cfg.Agent)}, nil
}

// handle runs one taken request: keep-alives for as long as it runs, its first event, the
// work, its last event (as last gives it for how the work ended; nil for none), and the word to
// the node that the run is over. A run that the node ended (it counted the runtime lost, or the
// run went past its time) is stopped: the node has published its end, and nothing more of it is
// published. A task that a client cancels stops with the cause ErrCanceled.
func (s *server) handle(ctx context.Context, t *bus.TakenRun, first event.Event, work func(context.Context) error,
	last func(err error, stopping, canceled bool) event.Event) {
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := s.keepAlive(runCtx, t, cancel)
	req := t.Request()
	stopCancel, err := t.ServeCancel(func() { cancel(ErrCanceled) })
	if err == nil {
		defer stopCancel()
		_, err = t.Publish(runCtx, first)
	}
	if err == nil {
		err = work(runCtx)
	}
	stop()
	cause := context.Cause(runCtx)
	if errors.Is(cause, bus.ErrRunEnded) {
		s.log.Info("run ended by its node", "user", req.User, "run", req.RunID)
		return
	}
	// The runtime may be stopping: the run still ends for its client.
	finish, cancelFinish := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.FinishTimeout)
	defer cancelFinish()
	if ev := last(err, ctx.Err() != nil, errors.Is(cause, ErrCanceled)); ev != nil {
		if _, err := t.Publish(finish, ev); err != nil {
			s.log.Warn("ending run", "user", req.User, "run", req.RunID, "err", err)
		}
	}
	if err := t.Done(); err != nil {
		s.log.Warn("ending run", "user", req.User, "run", req.RunID, "err", err)
	}
}

// keepAlive keeps t alive every t.KeepAliveEvery until the returned stop is called (stop waits
// for it), or until the node says it ended the run: then it cancels the run with ErrRunEnded.
func (s *server) keepAlive(ctx context.Context, t *bus.TakenRun, cancel context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(t.KeepAliveEvery())
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				err := t.KeepAlive(ctx)
				if errors.Is(err, bus.ErrRunEnded) {
					cancel(err)
					return
				}
				if err != nil && ctx.Err() == nil {
					s.log.Warn("keeping run alive", "run", t.Request().RunID, "err", err)
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
