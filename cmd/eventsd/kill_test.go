package main

import (
	"bufio"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// eventsdBinary builds this command once per test run.
func eventsdBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eventsd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs eventsd as a process and returns it with its HTTP URL.
func startProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0", "--nats-listen", "0", "--log-level", "error"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if u := regexp.MustCompile(`HTTP on (http://\S+)`).FindStringSubmatch(lines.Text()); u != nil {
			go func() {
				for lines.Scan() {
				}
			}()
			return cmd, u[1]
		}
	}
	t.Fatal("eventsd printed no HTTP address")
	return nil, ""
}

// TestKilled kills eventsd with SIGKILL: on an external server its consumers go within the
// inactivity threshold; on its embedded store a new eventsd starts cleanly and keeps the events.
func TestKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills eventsd processes")
	}
	bin := eventsdBinary(t)

	t.Run("external NATS: consumers expire", func(t *testing.T) {
		ns := testplane.StartNATS(t, t.TempDir(), 0)
		dir := t.TempDir()
		cmd, url := startProcess(t, bin, "--nats-url", ns.AuthURL(), "--data-dir", dir, "--inactive-threshold", "1s")
		secret, _ := auth.LoadSecret(dir)
		tok, _ := auth.Mint(secret, "alice", nil, time.Hour)
		_, body := stream(t, url, tok, "")
		defer body.Close()
		_, js := testplane.Client(t, ns.AuthURL())
		consumers := func() int { return testplane.ConnectionConsumers(t, js, routing.StreamAGUI) }
		if n := consumers(); n != 1 {
			t.Fatalf("%d consumers with one stream open, want 1", n)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		deadline := time.Now().Add(30 * time.Second)
		for consumers() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the killed node's consumer is still there after 30s; the threshold is 1s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("embedded store: a new eventsd starts cleanly", func(t *testing.T) {
		dir := t.TempDir()
		cmd, url := startProcess(t, bin, "--data-dir", dir)
		secret, _ := auth.LoadSecret(dir)
		tok, _ := auth.Mint(secret, "alice", nil, time.Hour)
		next, body := stream(t, url, tok, "")
		post(t, url, tok, `{"type":"STEP_STARTED","stepName":"before"}`)
		first := next()
		body.Close()
		post(t, url, tok, `{"type":"STEP_STARTED","stepName":"stored"}`)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()

		_, url = startProcess(t, bin, "--data-dir", dir)
		resp, err := http.Get(url + "/readyz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("readyz after the restart: %v %v", resp, err)
		}
		resp.Body.Close()
		next, body = stream(t, url, tok, first.ID)
		defer body.Close()
		if f := next(); f.ID == "" || !regexp.MustCompile(`"stored"`).MatchString(f.Data) {
			t.Fatalf("resumed after SIGKILL: %+v, want the event stored before it", f)
		}
	})
}
