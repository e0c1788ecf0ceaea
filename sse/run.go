package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/event"
	"github.com/eventsd/eventsd/routing"
)

// RUN_ERROR codes of runs that eventsd ends itself.
const (
	// CodeNoRuntime: no runtime of the agent took the request within the run timeout.
	CodeNoRuntime = "no_runtime"
	// CodeRuntimeLost: the runtime that ran it stopped keeping it alive, or said it was over
	// without its last event arriving.
	CodeRuntimeLost = "runtime_lost"
	// CodeUnavailable: NATS went away, so the run's events can no longer be followed.
	CodeUnavailable = "unavailable"
	// CodeRunTimeout: the run went past --max-run-duration; its runtime is told to stop.
	CodeRunTimeout = "run_timeout"
)

// runEndGrace is how long, after a runtime says its run is over, the run's last event may
// take to arrive before the run ends in runtime_lost.
const runEndGrace = 10 * time.Second

// RunOverhead bounds what a run request adds to its input when it is stored (agent, user,
// ids and the claim subject, JSON-escaped, and the headers): --max-run-body plus it must fit
// the NATS server's payload limit.
const RunOverhead = 8 << 10

// serveRun answers POST /api/v1/agui/agents/{agent}/run, as the stock AG-UI client (HttpAgent)
// calls it: the body is a RunAgentInput. The request goes on the agent's work queue for the
// caller, and the answer is that run's events (RUN_STARTED ... RUN_FINISHED or RUN_ERROR) as
// an SSE stream, which ends with the run.
func (h *Handler) serveRun(w http.ResponseWriter, r *http.Request) {
	start := h.now()
	id, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	req, ok := h.runRequest(w, r, id)
	if !ok {
		return
	}
	sub := routing.Subscription{Channel: routing.AGUI, User: id.User}
	if !h.admit(w, id.User) {
		return
	}
	// The feed opens first: every event of the run is stored after it.
	f, err := h.subscribe(r.Context(), sub)
	if err != nil {
		h.conns.add(id.User, -1)
		writeFailure(w, err, "")
		return
	}
	defer f.Close()
	run, err := h.cfg.Broker.EnqueueRun(r.Context(), req, h.runTimeout())
	if err != nil {
		h.conns.add(id.User, -1)
		writeInputError(w, err)
		return
	}
	h.cfg.Metrics.StreamOpened(routing.AGUI)
	rs := &runStream{h: h, req: req, fw: frameWriter{maxEvent: h.cfg.MaxEvent}}
	streamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	rs.out = &heldWriter{w: w, rc: http.NewResponseController(w), left: r.Context().Done()}
	reason, err := rs.serve(r.Context(), f, run)
	h.streamEnded(sub, start, rs.sent, reason, err)
	release := func() { h.conns.add(id.User, -1) }
	if rs.settled {
		_ = run.Close()
		release()
		return
	}
	// The run goes on without its client, and still counts as one of the user's streams.
	h.followRun(run, release, func(err error) {
		if end, ok := h.runFailure(req, err); ok {
			h.publishEnd(req, end)
		}
	})
}

// runRequest reads and checks a run request, or answers what is wrong with it.
func (h *Handler) runRequest(w http.ResponseWriter, r *http.Request, id auth.Identity) (bus.RunRequest, bool) {
	agent := chi.URLParam(r, "agent")
	if err := routing.ValidateAgent(agent); err != nil {
		writeError(w, http.StatusNotFound, err.Error(), "agent")
		return bus.RunRequest{}, false
	}
	err := checkJSONContentType(r.Header.Get("Content-Type"))
	var body []byte
	if err == nil {
		body, err = h.readBody(w, r, h.cfg.MaxRunBody, "--max-run-body")
	}
	var in event.RunAgentInput
	if err == nil {
		in, err = event.DecodeRunAgentInput(body)
	}
	if err != nil {
		writeInputError(w, err)
		return bus.RunRequest{}, false
	}
	return bus.RunRequest{Agent: agent, User: id.User, ThreadID: in.ThreadID, RunID: in.RunID, Input: body}, true
}

// runStream writes one run's events to the client that started it.
type runStream struct {
	h    *Handler
	req  bus.RunRequest
	out  wire
	fw   frameWriter
	sent int
	// settled: the run's end is known and on the thread (its last event came, or eventsd
	// published or wrote one): nobody need follow the run once the client is gone.
	settled bool
}

// serve writes the run's events as they come, and a heartbeat after Config.Heartbeat without
// one, until the run's last event (RUN_FINISHED or RUN_ERROR) is written. A run that eventsd
// ends itself (no runtime, runtime lost, past --max-run-duration) ends with a RUN_ERROR that
// it publishes on the run's thread, so that every client of the thread sees the run end, and
// that reaches this client after the run's other events. It returns why it stopped.
func (rs *runStream) serve(ctx context.Context, f feed, run *bus.Run) (reason string, err error) {
	ready := make(chan struct{}, 1)
	f.Notify(func() { signal(ready) })
	beat := time.NewTicker(rs.h.cfg.Heartbeat)
	defer beat.Stop()
	limit := time.NewTimer(rs.h.cfg.MaxRunDuration)
	defer limit.Stop()
	ended := run.Ended()
	var grace <-chan time.Time
	late := event.RunError{Code: CodeRuntimeLost, Message: "the agent's runtime ended the run without its last event"}
	var batch []bus.Event
	for {
		select {
		case <-ready:
			var more, over bool
			batch, more = f.Take(batch[:0], maxBatchEvents)
			if over, err = rs.write(batch); err != nil || over {
				rs.settled = rs.settled || over
				return rs.stopped(err)
			}
			if !more {
				return rs.end(event.RunError{Code: CodeUnavailable, Message: fmt.Sprintf("the run's events can no longer be followed: %v", f.Err())})
			}
		case <-limit.C:
			run.End(errRunTimeout) // its runtime stops at its next keep-alive
		case <-ended:
			ended, grace = nil, time.After(runEndGrace)
			if end, ok := rs.h.runFailure(rs.req, run.Err()); ok {
				if !rs.h.publishEnd(rs.req, end) {
					return rs.end(end)
				}
				rs.settled, late = true, end // it comes through the feed, unless NATS fails it
			}
		case <-grace:
			return rs.end(late)
		case <-beat.C:
			if err := rs.send(aguiHeartbeatFrame); err != nil {
				return rs.stopped(err)
			}
		case <-ctx.Done():
			return "client", nil
		case <-rs.h.done:
			return "shutdown", nil
		}
	}
}

// errRunTimeout ends a run that went past --max-run-duration.
var errRunTimeout = errors.New("sse: the run went past its longest duration")

// runFailure is the RUN_ERROR that ends run req, which failed with err (bus.Run.Err); false for
// a run its runtime ended, whose last event is on its way.
func (h *Handler) runFailure(req bus.RunRequest, err error) (event.RunError, bool) {
	switch {
	case err == nil:
		return event.RunError{}, false
	case errors.Is(err, bus.ErrNoRuntime):
		return event.RunError{Code: CodeNoRuntime, Message: fmt.Sprintf("no runtime of agent %s took the run within %s", req.Agent, h.runTimeout())}, true
	case errors.Is(err, errRunTimeout):
		return event.RunError{Code: CodeRunTimeout, Message: fmt.Sprintf("the run went past %s", h.cfg.MaxRunDuration)}, true
	}
	return runtimeLost, true
}

// runtimeLost ends a run whose runtime stopped keeping it alive.
var runtimeLost = event.RunError{Code: CodeRuntimeLost, Message: "the agent's runtime stopped responding during the run"}

// publishEnd publishes the RUN_ERROR that ends a run on its thread, and reports whether it is
// stored. It is not bound to a request: its client may be gone.
func (h *Handler) publishEnd(req bus.RunRequest, end event.RunError) bool {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.WriteTimeout)
	defer cancel()
	if _, err := h.cfg.Broker.PublishRunEvent(ctx, req.User, req.ThreadID, req.RunID, end); err != nil {
		h.log.Warn("publishing the end of a run", "user", req.User, "run", req.RunID, "code", end.Code, "err", err)
		return false
	}
	return true
}

// stopped gives the reason the stream stopped for after a write (err) or the run's last event
// (nil).
func (rs *runStream) stopped(err error) (string, error) {
	if err != nil {
		return rs.out.(*heldWriter).why(err)
	}
	return "finished", nil
}

// write writes the run's events among evs, without the attribution fields their types do not
// define, and reports whether the run's last event was among them.
func (rs *runStream) write(evs []bus.Event) (over bool, err error) {
	for _, ev := range evs {
		typ, ok := attributedTo(&ev, rs.req.ThreadID, rs.req.RunID)
		if !ok {
			continue
		}
		if _, err := rs.fw.event(ev, false); err != nil {
			rs.h.skipped(routing.AGUI, ev, err)
			continue
		}
		rs.sent++
		if over = typ == "RUN_FINISHED" || typ == "RUN_ERROR"; over {
			break
		}
	}
	if len(rs.fw.frames()) == 0 {
		return over, nil
	}
	err = rs.send(rs.fw.frames())
	rs.fw.reset()
	return over, err
}

// end writes the RUN_ERROR that ends the run for this client, when it cannot come through the
// feed, and gives its code as the reason the stream stopped.
func (rs *runStream) end(ev event.RunError) (string, error) {
	data, err := event.Encode(ev, rs.h.now())
	if err == nil {
		_, err = rs.fw.frame(bus.Event{Data: data, Compact: true}, false, false) // no cursor: not stored
	}
	if err == nil {
		err = rs.send(rs.fw.frames())
		rs.fw.reset()
	}
	rs.settled = true // written, or not: the client is gone, and the thread has it or NATS is away
	if err != nil {
		return rs.stopped(err)
	}
	rs.sent++
	return ev.Code, nil
}

// send writes b within the write timeout.
func (rs *runStream) send(b []byte) error { return writeWithin(rs.out, rs.h.cfg.WriteTimeout, b) }

// runTimeout is how long a run request waits for a runtime.
func (h *Handler) runTimeout() time.Duration {
	if h.cfg.RunTimeout > 0 {
		return h.cfg.RunTimeout
	}
	return routing.DefaultStreamOptions.RunTimeout
}

// followRun follows a run whose client left before its end until it ends, and gives end how
// it ended (bus.Run.Err), so that a runtime lost meanwhile, or a run past its time, still ends
// for the run's other clients; then it calls release. Close stops it.
func (h *Handler) followRun(run *bus.Run, release func(), end func(error)) {
	started := h.inBackground(func() {
		defer release()
		defer func() { _ = run.Close() }()
		limit := time.NewTimer(h.cfg.MaxRunDuration) // from when the client left: at most twice the limit in all
		defer limit.Stop()
		select {
		case <-run.Ended():
		case <-limit.C:
			run.End(errRunTimeout)
		case <-h.done:
			return
		}
		end(run.Err())
	})
	if !started {
		_ = run.Close()
		release()
	}
}

// inBackground runs fn in a goroutine that Close waits for, and reports false, without running
// it, once the handler is closing.
func (h *Handler) inBackground(fn func()) bool {
	h.streamsMu.Lock() // as track: Close waits for what starts before it
	defer h.streamsMu.Unlock()
	if h.closing {
		return false
	}
	h.streamsWG.Go(fn)
	return true
}
