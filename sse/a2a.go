package sse

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/routing"
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
