package testplane

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"testing"
)

// StartEcho builds examples/echo-agent and runs it, as its own process, against the NATS
// server at natsURL, with the given pause between words, until the test ends.
func StartEcho(t *testing.T, ctx context.Context, natsURL, delay string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "echo-agent")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/eventsd/eventsd/examples/echo-agent")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/echo-agent: %v\n%s", err, out)
	}
	echo := exec.Command(bin, "--nats-url", natsURL, "--delay", delay)
	var stderr bytes.Buffer
	echo.Stderr = &stderr
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = echo.Process.Kill()
		_ = echo.Wait()
		if t.Failed() {
			t.Logf("echo-agent: %s", stderr.String())
		}
	})
}
