package routing

import (
	"errors"
	"fmt"
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

func TestRunNames(t *testing.T) {
	tests := []struct {
		name, agent, user         string
		subject, filter, consumer string
	}{
		{"plain user", "echo", "alice", "runs.echo.alice", "runs.echo.*", "runs-echo"},
		{"encoded user", "echo", "alice@example.com", "runs.echo.~YWxpY2VAZXhhbXBsZS5jb20", "runs.echo.*", "runs-echo"},
		{"dashed agent", "my-agent_1", "a.b", "runs.my-agent_1.~YS5i", "runs.my-agent_1.*", "runs-my-agent_1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := RunSubject(tt.agent, tt.user); err != nil || got != tt.subject {
				t.Errorf("RunSubject(%q, %q) = %q, %v, want %q", tt.agent, tt.user, got, err, tt.subject)
			}
			if got, err := RunFilter(tt.agent); err != nil || got != tt.filter {
				t.Errorf("RunFilter(%q) = %q, %v, want %q", tt.agent, got, err, tt.filter)
			}
			if got, err := RunConsumer(tt.agent); err != nil || got != tt.consumer {
				t.Errorf("RunConsumer(%q) = %q, %v, want %q", tt.agent, got, err, tt.consumer)
			}
		})
	}
}

func TestRunNamesReject(t *testing.T) {
	if got, err := RunSubject("a.b", "alice"); !errors.Is(err, ErrInvalidAgent) {
		t.Errorf("RunSubject(%q, %q) = %q, %v, want ErrInvalidAgent", "a.b", "alice", got, err)
	}
	if got, err := RunSubject("echo", ""); !errors.Is(err, ErrInvalidUser) {
		t.Errorf("RunSubject(%q, %q) = %q, %v, want ErrInvalidUser", "echo", "", got, err)
	}
	if got, err := RunFilter(">"); !errors.Is(err, ErrInvalidAgent) {
		t.Errorf("RunFilter(%q) = %q, %v, want ErrInvalidAgent", ">", got, err)
	}
	if got, err := RunConsumer(""); !errors.Is(err, ErrInvalidAgent) {
		t.Errorf("RunConsumer(%q) = %q, %v, want ErrInvalidAgent", "", got, err)
	}
}

// TestRunsStream: RUNS is a work queue that captures exactly runs.<agent>.<user token>, and
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
	case len(runs.Subjects) != 1 || runs.Subjects[0] != "runs.*.*":
		t.Errorf("%s: Subjects = %q, want [runs.*.*]", StreamRuns, runs.Subjects)
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
		subject, err := RunSubject(agent, "alice")
		if err != nil {
			t.Fatalf("RunSubject(%q, alice): %v", agent, err)
		}
		if got := strings.Count(subject, "."); got != 2 || strings.ContainsAny(agent, "*> \t\r\n") {
			t.Fatalf("RunSubject(%q, alice) = %q: agent spans tokens or holds subject syntax", agent, subject)
		}
	})
}

func ExampleRunSubject() {
	s, _ := RunSubject("echo", "alice@example.com")
	fmt.Println(s)
	// Output: runs.echo.~YWxpY2VAZXhhbXBsZS5jb20
}
