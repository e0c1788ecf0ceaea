package routing

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestValidateAgent(t *testing.T) {
	tests := []struct {
		name, agent string
		ok          bool
	}{
		{"plain", "echo", true},
		{"dash, underscore, digits", "Echo-2_b", true},
		{"64 characters", strings.Repeat("a", MaxAgentLen), true},
		{"empty", "", false},
		{"65 characters", strings.Repeat("a", MaxAgentLen+1), false},
		{"dot", "a.b", false},
		{"star", "*", false},
		{"gt", ">", false},
		{"space", "a b", false},
		{"tilde", "~echo", false},
		{"unicode", "écho", false},
		{"slash", "a/b", false},
		{"NUL", "a\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateAgent(tt.agent)
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, ErrInvalidAgent) {
				t.Fatalf("ValidateAgent(%q) = %v, want ok %v", tt.agent, err, tt.ok)
			}
		})
	}
}

func TestQueueNames(t *testing.T) {
	tests := []struct {
		name                      string
		q                         Queue
		agent, user               string
		subject, filter, consumer string
	}{
		{"plain user", Runs, "echo", "alice", "runs.echo.alice", "runs.echo.*", "runs-echo"},
		{"encoded user", Runs, "echo", "alice@example.com", "runs.echo.~YWxpY2VAZXhhbXBsZS5jb20", "runs.echo.*", "runs-echo"},
		{"dashed agent", Runs, "my-agent_1", "a.b", "runs.my-agent_1.~YS5i", "runs.my-agent_1.*", "runs-my-agent_1"},
		{"tasks", Tasks, "echo", "alice", "tasks.echo.alice", "tasks.echo.*", "tasks-echo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := tt.q.Subject(tt.agent, tt.user); err != nil || got != tt.subject {
				t.Errorf("Subject(%q, %q) = %q, %v, want %q", tt.agent, tt.user, got, err, tt.subject)
			}
			if got, err := tt.q.Filter(tt.agent); err != nil || got != tt.filter {
				t.Errorf("Filter(%q) = %q, %v, want %q", tt.agent, got, err, tt.filter)
			}
			if got, err := tt.q.Consumer(tt.agent); err != nil || got != tt.consumer {
				t.Errorf("Consumer(%q) = %q, %v, want %q", tt.agent, got, err, tt.consumer)
			}
		})
	}
}

func TestQueueNamesReject(t *testing.T) {
	if got, err := Runs.Subject("a.b", "alice"); !errors.Is(err, ErrInvalidAgent) {
		t.Errorf("Subject(%q, %q) = %q, %v, want ErrInvalidAgent", "a.b", "alice", got, err)
	}
	if got, err := Tasks.Subject("echo", ""); !errors.Is(err, ErrInvalidUser) {
		t.Errorf("Subject(%q, %q) = %q, %v, want ErrInvalidUser", "echo", "", got, err)
	}
	if got, err := Runs.Filter(">"); !errors.Is(err, ErrInvalidAgent) {
		t.Errorf("Filter(%q) = %q, %v, want ErrInvalidAgent", ">", got, err)
	}
	if got, err := Tasks.Consumer(""); !errors.Is(err, ErrInvalidAgent) {
		t.Errorf("Consumer(%q) = %q, %v, want ErrInvalidAgent", "", got, err)
	}
	if got, err := Queue("jobs").Subject("echo", "alice"); !errors.Is(err, ErrInvalidQueue) {
		t.Errorf("jobs.Subject = %q, %v, want ErrInvalidQueue", got, err)
	}
}

// TestRunsStream: RUNS is a work queue that captures exactly runs.<agent>.<user token> and
// tasks.<agent>.<user token>, and
// keeps a request at least as long as it may wait for a runtime.
func TestRunsStream(t *testing.T) {
	o := DefaultStreamOptions
	o.MaxAge = o.RunTimeout / 2
	var runs *StreamSpec
	for _, s := range Streams(o) {
		if s.Name == StreamRuns {
			runs = &s
		}
	}
	switch {
	case runs == nil:
		t.Fatalf("Streams() has no %s stream", StreamRuns)
	case !runs.WorkQueue:
		t.Errorf("%s: WorkQueue = false, want true", StreamRuns)
	case !slices.Equal(runs.Subjects, []string{"runs.*.*", "tasks.*.*"}):
		t.Errorf("%s: Subjects = %q, want [runs.*.* tasks.*.*]", StreamRuns, runs.Subjects)
	case runs.MaxAge != o.RunTimeout:
		t.Errorf("%s: MaxAge = %v, want the run timeout %v", StreamRuns, runs.MaxAge, o.RunTimeout)
	case runs.MaxBytes != MaxRunQueueBytes:
		t.Errorf("%s: MaxBytes = %d, want %d whatever the other streams have", StreamRuns, runs.MaxBytes, MaxRunQueueBytes)
	}
	o.MaxBytes = 0 // no limit on the event streams
	if s := Streams(o); s[len(s)-1].MaxBytes != MaxRunQueueBytes {
		t.Errorf("%s with no byte limit elsewhere: MaxBytes = %d, want %d", StreamRuns, s[len(s)-1].MaxBytes, MaxRunQueueBytes)
	}
}

func FuzzValidateAgent(f *testing.F) {
	for _, s := range []string{"echo", "a.b", "*", ">", " ", "~x", "é", strings.Repeat("a", 64), strings.Repeat("a", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, agent string) {
		if ValidateAgent(agent) != nil {
			return
		}
		subject, err := Runs.Subject(agent, "alice")
		if err != nil {
			t.Fatalf("Subject(%q, alice): %v", agent, err)
		}
		if got := strings.Count(subject, "."); got != 2 || strings.ContainsAny(agent, "*> \t\r\n") {
			t.Fatalf("Subject(%q, alice) = %q: agent spans tokens or holds subject syntax", agent, subject)
		}
	})
}

func ExampleQueue_Subject() {
	s, _ := Runs.Subject("echo", "alice@example.com")
	fmt.Println(s)
	// Output: runs.echo.~YWxpY2VAZXhhbXBsZS5jb20
}
