// Package nodetest runs Node.js scripts for tests that check eventsd against the official
// AG-UI packages (installed under test/agui by 'npm ci', which .ci/run does).
package nodetest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
)

// Run runs script as an ES module with node in dir, input as JSON on its standard input and env
// added to its environment, and decodes what it prints into out. It skips the test when node
// is not installed.
func Run(t testing.TB, dir, script string, input, out any, env ...string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: install Node.js 20+ to check eventsd against the official AG-UI packages")
	}
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, "--input-type=module", "-e", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, stderr.String())
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("node printed %q: %v", b, err)
	}
}
