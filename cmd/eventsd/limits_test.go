package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestRunRefusesMaxBodyOverPayload: a --max-body that, with the headers and fields ingress
// adds, cannot fit the NATS server's payload limit stops eventsd with the flag named, rather
// than answering 500 to the events that do not fit.
func TestRunRefusesMaxBodyOverPayload(t *testing.T) {
	err := run(context.Background(), []string{"eventsd", "--data-dir", t.TempDir(), "--nats-listen", "0", "--listen", "127.0.0.1:0",
		"--log-level", "error", "--max-body", "1048576"}, io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "--max-body 1048576: the NATS server stores at most 1048576 bytes per event") {
		t.Fatalf("--max-body 1048576 against a 1 MiB payload limit: %v, want it refused, naming the flag", err)
	}
}
