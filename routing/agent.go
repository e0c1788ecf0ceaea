package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// MaxAgentLen bounds an agent name, which becomes one subject token.
const MaxAgentLen = 64

// ErrInvalidAgent is returned for an agent name that is not [A-Za-z0-9_-]{1,64}.
var ErrInvalidAgent = errors.New("routing: invalid agent name")

// ValidateAgent reports whether name can name an agent: 1 to 64 characters of [A-Za-z0-9_-].
// A valid name is one subject token: it can never be a wildcard or span tokens.
func ValidateAgent(name string) error {
	if name == "" || len(name) > MaxAgentLen || !isPlain(name) {
		return fmt.Errorf("%w %q: want 1 to %d characters of A-Z, a-z, 0-9, _ and -", ErrInvalidAgent, name, MaxAgentLen)
	}
	return nil
}

// Queue names a work queue of requests for agents: Runs (AG-UI runs) or Tasks (A2A tasks
// and the messages that continue them). Both are kept in the RUNS stream; every agent has one
// share of each, which all its runtimes pull from.
type Queue string

// The work queues.
const (
	Runs  Queue = "runs"
	Tasks Queue = "tasks"
)

// ErrInvalidQueue is returned for a Queue that is neither Runs nor Tasks.
var ErrInvalidQueue = errors.New("routing: no such work queue")

// check checks the queue and the agent.
func (q Queue) check(agent string) error {
	if q != Runs && q != Tasks {
		return fmt.Errorf("%w %q", ErrInvalidQueue, q)
	}
	return ValidateAgent(agent)
}

// Subject returns the subject a request of user for agent is stored on in the RUNS stream:
// <queue>.<agent>.<user token>.
func (q Queue) Subject(agent, user string) (string, error) {
	if err := q.check(agent); err != nil {
		return "", err
	}
	tok, err := UserToken(user)
	if err != nil {
		return "", err
	}
	return string(q) + "." + agent + "." + tok, nil
}

// Filter returns the subject filter that selects every request of the queue for agent,
// whoever made it: <queue>.<agent>.*.
func (q Queue) Filter(agent string) (string, error) {
	if err := q.check(agent); err != nil {
		return "", err
	}
	return string(q) + "." + agent + ".*", nil
}

// Consumer returns the name of the durable consumer of the RUNS stream that every runtime of
// agent shares for the queue, so that each request goes to one of them: <queue>-<agent>.
func (q Queue) Consumer(agent string) (string, error) {
	if err := q.check(agent); err != nil {
		return "", err
	}
	return string(q) + "-" + agent, nil
}

// CancelSubject returns the core NATS subject on which the runtime that holds a task of user
// hears that it is to be cancelled: cancel.<user token>.<hash of the task id> (a task id may
// hold any character; a subject token may not).
func CancelSubject(user, taskID string) (string, error) {
	tok, err := UserToken(user)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(taskID))
	return "cancel." + tok + "." + hex.EncodeToString(h[:16]), nil
}
