package sse

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/tasks"
)

// JSON-RPC 2.0 and A2A 1.0 error codes.
const (
	rpcParseError     = -32700
	rpcInvalidRequest = -32600
	rpcMethodNotFound = -32601
	rpcInvalidParams  = -32602
	rpcInternal       = -32603
	a2aTaskNotFound   = -32001
)

// rpcRequest is a JSON-RPC 2.0 request.
type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	ID      json.RawMessage `json:"id"`
}

// rpcError is a JSON-RPC 2.0 error object.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// writeRPC answers a JSON-RPC request with result, or with err when it is set. A client's
// mistake is a JSON-RPC error in a 200 answer, never a 5xx.
func writeRPC(w http.ResponseWriter, id json.RawMessage, result any, err *rpcError) {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	body := map[string]any{"jsonrpc": "2.0", "id": id}
	if err != nil {
		body["error"] = err
	} else {
		body["result"] = result
	}
	writeJSON(w, http.StatusOK, body)
}

// serveAgentCard answers GET /api/v1/a2a/{agent}/.well-known/agent-card.json: the agent's A2A
// 1.0 card, whose JSON-RPC endpoint is /api/v1/a2a/{agent} on this server.
func (h *Handler) serveAgentCard(w http.ResponseWriter, r *http.Request) {
	agent := chi.URLParam(r, "agent")
	if err := routing.ValidateAgent(agent); err != nil {
		writeError(w, http.StatusNotFound, err.Error(), "agent")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":        agent,
		"description": "the agent " + agent + ", served through eventsd",
		"version":     "1.0.0",
		"supportedInterfaces": []map[string]string{{
			"url": h.publicURL(r) + "/api/v1/a2a/" + agent, "protocolBinding": "JSONRPC", "protocolVersion": "1.0",
		}},
		"capabilities":         map[string]bool{"streaming": true, "pushNotifications": false},
		"securitySchemes":      map[string]any{"bearer": map[string]any{"httpAuthSecurityScheme": map[string]string{"scheme": "Bearer", "bearerFormat": "JWT"}}},
		"securityRequirements": []any{map[string]any{"schemes": map[string]any{"bearer": map[string]any{"list": []string{}}}}},
		"defaultInputModes":    []string{"text/plain"},
		"defaultOutputModes":   []string{"text/plain"},
		"skills":               []any{},
	})
}

// publicURL is where clients reach this server: Config.PublicURL, else the request's own
// scheme and host.
func (h *Handler) publicURL(r *http.Request) string {
	if h.cfg.PublicURL != "" {
		return h.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// serveA2A answers POST /api/v1/a2a/{agent}: A2A 1.0 JSON-RPC for the caller's tasks.
func (h *Handler) serveA2A(w http.ResponseWriter, r *http.Request) {
	id, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	body, err := h.readBody(w, r, h.cfg.MaxBody, "--max-body")
	if err != nil {
		writeInputError(w, err)
		return
	}
	var req rpcRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeRPC(w, nil, nil, &rpcError{rpcParseError, "not JSON: " + err.Error()})
		return
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		writeRPC(w, req.ID, nil, &rpcError{rpcInvalidRequest, `want "jsonrpc":"2.0" and a method`})
		return
	}
	switch req.Method {
	case "GetTask":
		result, rerr := h.getTask(r.Context(), id, req.Params)
		writeRPC(w, req.ID, result, rerr)
	case "SubscribeToTask":
		h.subscribeToTask(w, r, id, req)
	default:
		writeRPC(w, req.ID, nil, &rpcError{rpcMethodNotFound, "no method " + req.Method})
	}
}

// getTask answers GetTask: the caller's task, with at most historyLength messages of its
// history when that is given.
func (h *Handler) getTask(ctx context.Context, id auth.Identity, params json.RawMessage) (any, *rpcError) {
	var p struct {
		ID            string `json:"id"`
		HistoryLength *int   `json:"historyLength"`
	}
	if json.Unmarshal(params, &p) != nil || p.ID == "" {
		return nil, &rpcError{rpcInvalidParams, "want params {id, historyLength?}"}
	}
	view, _, err := h.cfg.Broker.TaskView(ctx, id.User, p.ID)
	switch {
	case errors.Is(err, bus.ErrTaskNotFound):
		return nil, &rpcError{a2aTaskNotFound, "task not found: " + p.ID}
	case err != nil:
		return nil, &rpcError{rpcInternal, err.Error()}
	}
	task := view.Task
	if p.HistoryLength != nil && *p.HistoryLength >= 0 && len(task.History) > *p.HistoryLength {
		task.History = task.History[len(task.History)-*p.HistoryLength:]
	}
	return task, nil
}

// a2aUnsupported is A2A's UnsupportedOperationError.
const a2aUnsupported = -32004

// subscribeToTask answers SubscribeToTask: an SSE stream of JSON-RPC responses carrying the
// request's id, first the task as it is, then each of its status and artifact updates, until
// it reaches a terminal or interrupted state. Every frame carries an id: cursor of the A2A
// stream; a request with Last-Event-ID continues after it (the task is not sent again).
func (h *Handler) subscribeToTask(w http.ResponseWriter, r *http.Request, id auth.Identity, req rpcRequest) {
	var p struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(req.Params, &p) != nil || p.ID == "" {
		writeRPC(w, req.ID, nil, &rpcError{rpcInvalidParams, "want params {id}"})
		return
	}
	view, at, err := h.cfg.Broker.TaskView(r.Context(), id.User, p.ID)
	switch {
	case errors.Is(err, bus.ErrTaskNotFound):
		writeRPC(w, req.ID, nil, &rpcError{a2aTaskNotFound, "task not found: " + p.ID})
		return
	case err != nil:
		writeRPC(w, req.ID, nil, &rpcError{rpcInternal, err.Error()})
		return
	case tasks.Terminal(view.Task.Status.State):
		writeRPC(w, req.ID, nil, &rpcError{a2aUnsupported, "task " + p.ID + " is " + view.Task.Status.State + ": nothing more will come"})
		return
	}
	sub := routing.Subscription{Channel: routing.A2A, User: id.User, Cursor: &routing.Cursor{Seq: at, Epoch: view.Epoch}}
	resumed := false
	if c := lastEventID(r); c != "" {
		if cursor, err := routing.ParseCursor(c); err == nil && cursor.Epoch == view.Epoch {
			sub.Cursor, resumed = &cursor, true
		}
	}
	f, err := h.subscribe(r.Context(), sub)
	if err != nil {
		writeRPC(w, req.ID, nil, &rpcError{rpcInternal, err.Error()})
		return
	}
	defer f.Close()
	ts := &taskStream{h: h, reqID: req.ID, view: *view, out: &heldWriter{w: w, rc: http.NewResponseController(w), left: r.Context().Done()}}
	streamHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	if !resumed {
		task := view.Task
		if ts.send(routing.Cursor{Seq: at, Epoch: view.Epoch}, &tasks.Response{Task: &task}) != nil {
			return
		}
	}
	ts.follow(r.Context(), f)
}

// taskStream writes one task's stream responses to a SubscribeToTask client.
type taskStream struct {
	h     *Handler
	reqID json.RawMessage
	view  tasks.View
	out   wire
}

// follow writes the task's updates from f until the task reaches a terminal or interrupted
// state, the client leaves, or the feed ends.
func (ts *taskStream) follow(ctx context.Context, f feed) {
	ready := make(chan struct{}, 1)
	f.Notify(func() { signal(ready) })
	beat := time.NewTicker(ts.h.cfg.Heartbeat)
	defer beat.Stop()
	var batch []bus.Event
	for {
		select {
		case <-ready:
			var more bool
			batch, more = f.Take(batch[:0], maxBatchEvents)
			for _, ev := range batch {
				resp, err := ts.view.Apply(ev.Data, ev.Cursor.Seq, ev.Cursor.Epoch)
				if err != nil || resp == nil {
					continue
				}
				if ts.send(ev.Cursor, resp) != nil {
					return
				}
				if st := ts.view.Task.Status.State; tasks.Terminal(st) || tasks.Interrupted(st) {
					return
				}
			}
			if !more {
				return
			}
		case <-beat.C:
			if ts.write([]byte(": heartbeat\n\n")) != nil {
				return
			}
		case <-ctx.Done():
			return
		case <-ts.h.done:
			return
		}
	}
}

// send writes one stream response, wrapped in a JSON-RPC response with the request's id, with
// its cursor.
func (ts *taskStream) send(cursor routing.Cursor, resp *tasks.Response) error {
	data, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": ts.reqID, "result": resp})
	if err != nil {
		return err
	}
	frame := append([]byte("id: "), cursor.Append(nil)...)
	frame = append(append(append(frame, "\ndata: "...), data...), "\n\n"...)
	return ts.write(frame)
}

func (ts *taskStream) write(b []byte) error {
	if err := ts.out.SetWriteDeadline(time.Now().Add(ts.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	_, err := ts.out.Write(b)
	return err
}
