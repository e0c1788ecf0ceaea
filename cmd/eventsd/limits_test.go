package main

import (
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
)

// TestRunRefusesMaxBodyOverPayload: a --max-body that, with the headers and fields ingress
// adds, cannot fit the NATS server's payload limit stops eventsd with the flag named, rather
// than answering 500 to the events that do not fit.
func TestRunRefusesMaxBodyOverPayload(t *testing.T) {
	err := run(context.Background(), []string{"eventsd", "--data-dir", t.TempDir(), "--nats-listen", "0", "--listen", "127.0.0.1:0",
		"--log-level", "error", "--max-body", "8388608"}, io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "--max-body 8388608: the NATS server stores at most 8388608 bytes per event") {
		t.Fatalf("--max-body 8388608 against an 8 MiB payload limit: %v, want it refused, naming the flag", err)
	}
}

// TestRunRefusesMaxRunBodyOverPayload: the same for --max-run-body, with what a run request
// adds to its input.
func TestRunRefusesMaxRunBodyOverPayload(t *testing.T) {
	err := run(context.Background(), []string{"eventsd", "--data-dir", t.TempDir(), "--nats-listen", "0", "--listen", "127.0.0.1:0",
		"--log-level", "error", "--max-run-body", "8388608"}, io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "--max-run-body 8388608: the NATS server carries at most 8388608 bytes per message") {
		t.Fatalf("--max-run-body 8388608 against an 8 MiB payload limit: %v, want it refused, naming the flag", err)
	}
}

// TestRunRefusesMaxBytesWithoutStorage: a --max-bytes that the server cannot reserve for every
// stream stops eventsd at once, naming the flag, instead of waiting for JetStream.
func TestRunRefusesMaxBytesWithoutStorage(t *testing.T) {
	err := run(context.Background(), []string{"eventsd", "--data-dir", t.TempDir(), "--nats-listen", "0", "--listen", "127.0.0.1:0",
		"--log-level", "error", "--max-bytes", strconv.Itoa(1 << 60)}, io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "--max-bytes 1152921504606846976: bus: JetStream lacks the storage") {
		t.Fatalf("--max-bytes of 1 EiB: %v, want it refused at once, naming the flag", err)
	}
}
