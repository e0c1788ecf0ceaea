package threads

import (
	"encoding/json"
	"time"

	"github.com/eventsd/eventsd/event"
)

// snapshotRunID names the completed run that carries an idle thread's snapshots when no run of
// the thread is known.
const snapshotRunID = "thread-snapshot"

// Prelude returns the events a new connection to the thread opens with, which a fresh
// @ag-ui/client verifier accepts from the first: for a run in progress, its RUN_STARTED, the
// thread's MESSAGES_SNAPSHOT, its STATE_SNAPSHOT (when there is state), a CUSTOM "omitted"
// event when messages were left out, and a start for every step, message, tool call and
// reasoning span still open; for an idle thread, a completed run (RUN_STARTED with the last
// run's id ... that run's own RUN_FINISHED or RUN_ERROR, so that its outcome holds) carrying
// the same snapshots; nothing for a thread the
// view knows nothing of. The connection's events continue right after v.Seq.
func (v *View) Prelude(now time.Time) ([][]byte, error) {
	if v.Run == nil && len(v.Runs) == 0 && len(v.Messages) == 0 && v.State == nil {
		return nil, nil
	}
	var out [][]byte
	add := func(ev event.Event) error {
		b, err := event.Encode(ev, now)
		out = append(out, b)
		return err
	}
	runID := snapshotRunID
	if n := len(v.Runs); n > 0 {
		runID = v.Runs[n-1].ID
	}
	if v.Run != nil {
		out = append(out, v.Run.Started)
	} else if err := add(event.RunStarted{ThreadID: v.ThreadID, RunID: runID}); err != nil {
		return nil, err
	}
	if err := v.snapshots(add); err != nil {
		return nil, err
	}
	switch {
	case v.Run != nil:
		return out, v.Run.Open.starts(add)
	case v.LastEnd != nil:
		// The run's own end, its outcome or its error; a RUN_ERROR without the attribution
		// fields its type does not define.
		end, err := event.WithoutAttribution(v.LastEnd)
		return append(out, end), err
	}
	return out, add(event.RunFinished{ThreadID: v.ThreadID, RunID: runID})
}

// snapshots adds the thread's messages and state.
func (v *View) snapshots(add func(event.Event) error) error {
	msgs := make([]json.RawMessage, 0, len(v.Messages))
	for _, m := range v.Messages {
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		msgs = append(msgs, b)
	}
	if err := add(event.MessagesSnapshot{Messages: msgs}); err != nil {
		return err
	}
	if v.Omitted > 0 {
		value, _ := json.Marshal(map[string]int{"messages": v.Omitted})
		if err := add(event.Custom{Name: "eventsd.omitted", Value: value}); err != nil {
			return err
		}
	}
	if v.State != nil {
		return add(event.StateSnapshot{Snapshot: v.State})
	}
	return nil
}

// starts adds a start for everything open.
func (o Open) starts(add func(event.Event) error) error {
	var evs []event.Event
	for _, s := range o.Steps {
		evs = append(evs, event.StepStarted{StepName: s.ID, Attributable: event.Attributable{SubagentRunID: s.Subagent}})
	}
	for _, m := range o.Text {
		evs = append(evs, event.TextMessageStart{MessageID: m.ID, Role: m.Role, Name: m.Name, Attributable: event.Attributable{SubagentRunID: m.Subagent}})
	}
	for _, c := range o.Tools {
		evs = append(evs, event.ToolCallStart{ToolCallID: c.ID, ToolCallName: c.Name, ParentMessageID: c.Parent, Attributable: event.Attributable{SubagentRunID: c.Subagent}})
	}
	for _, r := range o.Spans {
		evs = append(evs, event.ReasoningStart{MessageID: r.ID, Attributable: event.Attributable{SubagentRunID: r.Subagent}})
	}
	for _, r := range o.Reasoning {
		evs = append(evs, event.ReasoningMessageStart{MessageID: r.ID, Role: "reasoning", Attributable: event.Attributable{SubagentRunID: r.Subagent}})
	}
	for _, ev := range evs {
		if err := add(ev); err != nil {
			return err
		}
	}
	return nil
}

// RunAt tells where seq falls among the runs v remembers: in one (which it returns), or between
// them (inRun false). known is false when seq is older than every run it remembers and it
// may have forgotten older ones. A run's end belongs to it: at its RUN_FINISHED, nothing is open.
func (v *View) RunAt(seq uint64) (span Span, inRun, known bool) {
	for i := len(v.Runs) - 1; i >= 0; i-- {
		s := v.Runs[i]
		if s.Start <= seq && (s.End == 0 || seq < s.End) {
			return s, true, true
		}
		if seq >= s.Start {
			return Span{}, false, true
		}
	}
	return Span{}, false, len(v.Runs) < maxRuns
}

// Reopen returns the prelude of a connection that resumes where v is: the open run's
// RUN_STARTED and a start for everything open in it; nothing between runs.
func (v *View) Reopen(now time.Time) ([][]byte, error) {
	if v.Run == nil {
		return nil, nil
	}
	out := [][]byte{v.Run.Started}
	err := v.Run.Open.starts(func(ev event.Event) error {
		b, err := event.Encode(ev, now)
		out = append(out, b)
		return err
	})
	return out, err
}
