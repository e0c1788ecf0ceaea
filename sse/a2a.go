package sse

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

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

	a2aTaskNotFound        = -32001
	a2aTaskNotCancelable   = -32002
	a2aPushNotSupported    = -32003
	a2aUnsupported         = -32004
	a2aNoExtendedCard      = -32007
	a2aVersionNotSupported = -32009
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
	description, err := h.cfg.Broker.AgentDescription(r.Context(), routing.Tasks, agent)
	switch {
	case errors.Is(err, bus.ErrNoAgent):
		writeError(w, http.StatusNotFound, "no runtime serves the agent "+agent+" over A2A", "agent")
		return
	case err != nil:
		writeFailure(w, err, "")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":        agent,
		"description": cmp.Or(description, "the agent "+agent),
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

// CheckPublicURL checks a Config.PublicURL: empty, or an absolute http or https URL with a
// host and no query or fragment.
func CheckPublicURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q: want http(s)://host[:port][/prefix]", s)
	}
	return nil
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

// serveA2A answers POST /api/v1/a2a/{agent}: A2A 1.0 JSON-RPC for the caller's tasks of the
// agent.
func (h *Handler) serveA2A(w http.ResponseWriter, r *http.Request) {
	agent := chi.URLParam(r, "agent")
	if err := routing.ValidateAgent(agent); err != nil {
		writeError(w, http.StatusNotFound, err.Error(), "agent")
		return
	}
	id, ok := h.authenticate(w, r)
	if !ok {
		return
	}
	body, err := h.readBody(w, r, h.cfg.MaxRunBody, "--max-run-body")
	if err != nil {
		writeInputError(w, err)
		return
	}
	req, rerr := readRPC(r, body)
	if rerr != nil {
		writeRPC(w, req.ID, nil, rerr)
		return
	}
	c := a2aCall{id: id, agent: agent, req: req}
	switch req.Method {
	case "GetTask":
		result, rerr := h.getTask(r.Context(), c)
		writeRPC(w, req.ID, result, rerr)
	case "CancelTask":
		if !h.admit(w, id.User) { // it follows the task for a moment, as a stream does
			return
		}
		result, rerr := h.cancelTask(r.Context(), c)
		h.conns.add(id.User, -1)
		writeRPC(w, req.ID, result, rerr)
	case "SubscribeToTask":
		h.subscribeToTask(w, r, c)
	case "SendMessage", "SendStreamingMessage":
		h.sendMessage(w, r, c)
	case "CreateTaskPushNotificationConfig", "GetTaskPushNotificationConfig", "ListTaskPushNotificationConfigs", "DeleteTaskPushNotificationConfig":
		writeRPC(w, req.ID, nil, &rpcError{a2aPushNotSupported, "push notifications are not supported: subscribe to the task (SubscribeToTask)"})
	case "GetExtendedAgentCard":
		writeRPC(w, req.ID, nil, &rpcError{a2aNoExtendedCard, "the agent has no extended card"})
	default:
		writeRPC(w, req.ID, nil, &rpcError{rpcMethodNotFound, "no method " + req.Method})
	}
}

// readRPC reads a request and checks its envelope and the A2A version it asks for (none: 1.0
// too). A request it refuses as such is answered with id null.
func readRPC(r *http.Request, body []byte) (rpcRequest, *rpcError) {
	var req rpcRequest
	if !json.Valid(body) {
		return rpcRequest{}, &rpcError{rpcParseError, "not JSON"}
	}
	var id any
	switch err := json.Unmarshal(body, &req); {
	case err != nil || req.JSONRPC != "2.0" || req.Method == "":
		return rpcRequest{}, &rpcError{rpcInvalidRequest, `want one request: an object with "jsonrpc":"2.0", a method and an id`}
	case len(req.ID) == 0 || json.Unmarshal(req.ID, &id) != nil || !validID(id):
		// A notification (no id) would get no answer: every A2A method has one to give.
		return rpcRequest{}, &rpcError{rpcInvalidRequest, "id: want a string or a number"}
	}
	if v := r.Header.Get("A2A-Version"); v != "" && v != "1.0" && v != "1" {
		return req, &rpcError{a2aVersionNotSupported, "A2A-Version " + v + ": this server speaks 1.0"}
	}
	return req, nil
}

func validID(v any) bool {
	switch v.(type) {
	case string, float64:
		return true
	}
	return false
}

// a2aCall is one JSON-RPC call: who makes it, to which agent.
type a2aCall struct {
	id    auth.Identity
	agent string
	req   rpcRequest
}

// taskParams reads the params of a call that names a task ({id, historyLength?}).
func (c a2aCall) taskParams() (taskID string, historyLength *int, rerr *rpcError) {
	var p struct {
		ID            string `json:"id"`
		HistoryLength *int   `json:"historyLength"`
	}
	if json.Unmarshal(c.req.Params, &p) != nil || p.ID == "" || len(p.ID) > bus.MaxRunIDLen {
		return "", nil, &rpcError{rpcInvalidParams, fmt.Sprintf("want params {id (1 to %d bytes), historyLength?}", bus.MaxRunIDLen)}
	}
	return p.ID, p.HistoryLength, nil
}

// ownTask returns the view of the caller's task of the call's agent; another user's task, or
// another agent's, is TaskNotFound.
func (h *Handler) ownTask(ctx context.Context, c a2aCall, taskID string) (*tasks.View, uint64, *rpcError) {
	view, at, err := h.cfg.Broker.TaskView(ctx, c.id.User, taskID)
	switch {
	case errors.Is(err, bus.ErrTaskNotFound) || err == nil && view.Agent != c.agent:
		return nil, 0, &rpcError{a2aTaskNotFound, "task not found: " + taskID}
	case err != nil:
		return nil, 0, &rpcError{rpcInternal, err.Error()}
	}
	return view, at, nil
}

// getTask answers GetTask: the caller's task, with at most historyLength messages of its
// history when that is given.
func (h *Handler) getTask(ctx context.Context, c a2aCall) (any, *rpcError) {
	taskID, historyLength, rerr := c.taskParams()
	if rerr != nil {
		return nil, rerr
	}
	view, _, rerr := h.ownTask(ctx, c, taskID)
	if rerr != nil {
		return nil, rerr
	}
	task := view.Task
	if historyLength != nil && *historyLength >= 0 && len(task.History) > *historyLength {
		task.History = task.History[len(task.History)-*historyLength:]
	}
	return task, nil
}
