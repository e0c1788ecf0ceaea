package routing

import (
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

// runsPrefix starts the subject of every run request.
const runsPrefix = "runs."

// RunSubject returns the subject a run request of user for agent is stored on in the RUNS
// stream: runs.<agent>.<user token>.
func RunSubject(agent, user string) (string, error) {
	if err := ValidateAgent(agent); err != nil {
		return "", err
	}
	tok, err := UserToken(user)
	if err != nil {
		return "", err
	}
	return runsPrefix + agent + "." + tok, nil
}

// RunFilter returns the subject filter that selects every run request for agent, whoever made
// it: runs.<agent>.*.
func RunFilter(agent string) (string, error) {
	if err := ValidateAgent(agent); err != nil {
		return "", err
	}
	return runsPrefix + agent + ".*", nil
}

// RunConsumer returns the name of the durable consumer of the RUNS stream that every runtime of
// agent shares, so that each request goes to one of them: runs-<agent>.
func RunConsumer(agent string) (string, error) {
	if err := ValidateAgent(agent); err != nil {
		return "", err
	}
	return "runs-" + agent, nil
}
