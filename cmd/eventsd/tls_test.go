package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// serialOf returns the serial number of the certificate in a PEM file.
func serialOf(t *testing.T, certFile string) *big.Int {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM block", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber
}

// servedSerial returns the serial number of the certificate that a new connection to url gets,
// trusting pool.
func servedSerial(t *testing.T, url string, pool *x509.CertPool) *big.Int {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber
}

// replaceCert moves a new certificate and key over the files that --tls-cert and --tls-key
// name, each in one step, as a certificate manager does.
func replaceCert(t *testing.T, certFile, keyFile, newCert, newKey string) {
	t.Helper()
	if err := os.Rename(newCert, certFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(newKey, keyFile); err != nil {
		t.Fatal(err)
	}
}

// TestTLSHandshake: eventsd offers HTTP/2 and HTTP/1.1 by ALPN, HTTP/2 first, and refuses TLS
// older than 1.2.
func TestTLSHandshake(t *testing.T) {
	p := startH2(t, tlsMode, nil)
	addr := strings.TrimPrefix(p.d.httpURL, "https://")
	for _, tt := range []struct {
		name       string
		offer      []string
		minV, maxV uint16
		want       string // negotiated protocol; empty: the handshake fails
	}{
		{"h2 and http/1.1 offered", []string{"h2", "http/1.1"}, 0, 0, "h2"},
		{"http/1.1 offered first", []string{"http/1.1", "h2"}, 0, 0, "h2"},
		{"http/1.1 alone", []string{"http/1.1"}, 0, 0, "http/1.1"},
		{"TLS 1.2", []string{"h2"}, tls.VersionTLS12, tls.VersionTLS12, "h2"},
		{"TLS 1.1", []string{"http/1.1"}, tls.VersionTLS10, tls.VersionTLS11, ""},
	} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.ca.Pool, NextProtos: tt.offer, MinVersion: tt.minV, MaxVersion: tt.maxV})
		if tt.want == "" {
			if err == nil {
				conn.Close()
				t.Errorf("%s: handshake succeeded, want it refused", tt.name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := conn.ConnectionState().NegotiatedProtocol; got != tt.want {
			t.Errorf("%s: negotiated %q, want %q", tt.name, got, tt.want)
		}
		conn.Close()
	}
}

// TestTLSCertificateReload replaces the certificate files under a running eventsd and reloads
// them: files that do not load leave the certificate served and log an error; a new
// certificate is served to new connections and logged with its expiry, while a stream opened
// before goes on, on its connection with the old certificate.
func TestTLSCertificateReload(t *testing.T) {
	p := startH2(t, tlsMode, nil)
	certFile, keyFile := p.d.certs.certFile, p.d.certs.keyFile
	old := serialOf(t, certFile)
	if got := servedSerial(t, p.d.httpURL, p.ca.Pool); got.Cmp(old) != 0 {
		t.Fatalf("served certificate %v, want %v, the one in --tls-cert", got, old)
	}
	c := p.client(t, false, nil)
	resp := p.request(t, context.Background(), c, routing.AGUI, "")
	frames := readFrames(t, resp.Body)

	if err := os.WriteFile(certFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.d.reload()
	want := "--tls-cert " + certFile + ": no PEM CERTIFICATE block in it"
	if log := p.stderr.String(); !strings.Contains(log, "level=ERROR msg=\"TLS certificate not reloaded") || !strings.Contains(log, want) {
		t.Fatalf("log after reloading a bad file: %q, want an error with %q", log, want)
	}
	if got := servedSerial(t, p.d.httpURL, p.ca.Pool); got.Cmp(old) != 0 {
		t.Fatalf("after a failed reload the certificate served is %v, want the old one, %v", got, old)
	}

	newCert, newKey := p.ca.Issue(t, "127.0.0.1")
	renewed := serialOf(t, newCert)
	replaceCert(t, certFile, keyFile, newCert, newKey)
	p.d.reload()
	if log := p.stderr.String(); !strings.Contains(log, "msg=\"TLS certificate reloaded\" file="+certFile) ||
		!strings.Contains(log, "serial="+renewed.String()+" expires=") {
		t.Fatalf("log after the reload: %q, want the new certificate's serial %v and expiry", log, renewed)
	}
	if got := servedSerial(t, p.d.httpURL, p.ca.Pool); got.Cmp(renewed) != 0 {
		t.Fatalf("after the reload a new connection gets certificate %v, want %v", got, renewed)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber; got.Cmp(old) != 0 {
		t.Fatalf("the open stream's connection has certificate %v, want the old one, %v", got, old)
	}
	p.publish(t, p.client(t, false, nil), "after the reload")
	if got := stepOf(t, nextFrame(t, frames)); got != "after the reload" {
		t.Fatalf("the stream opened before the reload gave step %q, want the one published after it", got)
	}
}

// runInProcess runs eventsd with args (and free ports, a new data directory, log level info)
// as main does, until the test ends, and returns the URL it prints and its log.
func runInProcess(t *testing.T, args ...string) (url string, log *testplane.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	log = &testplane.SyncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"eventsd", "--listen", "127.0.0.1:0", "--nats-listen", "0",
			"--data-dir", t.TempDir(), "--log-level", "info"}, args...), pw, log)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run returned %v after cancel, want nil", err)
		}
	})
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("eventsd printed nothing; its log: %s", log)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	url, ok := strings.CutPrefix(lines.Text(), "eventsd: HTTP on ")
	if !ok {
		url, ok = strings.CutPrefix(lines.Text(), "eventsd: HTTPS on ")
	}
	if !ok {
		t.Fatalf("eventsd printed %q first, want its HTTP address", lines.Text())
	}
	return url, log
}

// hangUp sends this process SIGHUP. That is safe only while run serves: run catches SIGHUP
// before it prints its address, and until it returns; otherwise the signal ends the process.
func hangUp(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// TestSIGHUP sends a real SIGHUP to eventsd running in this process: with TLS it reloads the
// certificate files; without, it logs that there is nothing to reload; either way eventsd
// goes on serving.
func TestSIGHUP(t *testing.T) {
	t.Run("TLS", func(t *testing.T) {
		ca := testplane.NewCA(t)
		certFile, keyFile := ca.Issue(t, "127.0.0.1")
		url, log := runInProcess(t, "--tls-cert", certFile, "--tls-key", keyFile)
		if !strings.HasPrefix(url, "https://127.0.0.1:") {
			t.Fatalf("eventsd serves on %q, want https://127.0.0.1:port", url)
		}
		newCert, newKey := ca.Issue(t, "127.0.0.1")
		renewed := serialOf(t, newCert)
		replaceCert(t, certFile, keyFile, newCert, newKey)
		hangUp(t)
		eventually(t, "a new connection gets the certificate reloaded on SIGHUP", func() bool {
			return servedSerial(t, url, ca.Pool).Cmp(renewed) == 0
		})
		if !strings.Contains(log.String(), "TLS certificate reloaded") {
			t.Fatalf("log %q, want the reload", log)
		}
	})
	t.Run("no TLS", func(t *testing.T) {
		url, log := runInProcess(t)
		hangUp(t)
		eventually(t, "SIGHUP is logged", func() bool { return strings.Contains(log.String(), "nothing to reload") })
		resp, err := http.Get(url + "/readyz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("readyz after SIGHUP: %v %v", resp, err)
		}
		resp.Body.Close()
	})
}

// TestRunRefusesTLSSettings: TLS flags that cannot work stop eventsd with the flag (and file)
// named, before anything starts (the data directory stays empty).
func TestRunRefusesTLSSettings(t *testing.T) {
	ca := testplane.NewCA(t)
	certFile, keyFile := ca.Issue(t, "127.0.0.1")
	_, otherKey := testplane.NewCA(t).Issue(t, "127.0.0.1")
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--tls-cert", certFile}, "--tls-cert " + certFile + ": want --tls-key with it"},
		{"key without cert", []string{"--tls-key", keyFile}, "--tls-key " + keyFile + ": want --tls-cert with it"},
		{"h2c with TLS", []string{"--h2c", "--tls-cert", certFile, "--tls-key", keyFile},
			"--h2c true: want no --tls-cert with it: over TLS, HTTP/2 is on already (negotiated by ALPN)"},
		{"missing cert", []string{"--tls-cert", missing, "--tls-key", keyFile}, "--tls-cert " + missing + ": no such file or directory"},
		{"missing key", []string{"--tls-cert", certFile, "--tls-key", missing}, "--tls-key " + missing + ": no such file or directory"},
		{"cert not PEM", []string{"--tls-cert", garbage, "--tls-key", keyFile}, "--tls-cert " + garbage + ": no PEM CERTIFICATE block in it"},
		{"key not PEM", []string{"--tls-cert", certFile, "--tls-key", garbage}, "--tls-key " + garbage + ": tls: failed to find any PEM data in key input"},
		{"key given as cert", []string{"--tls-cert", keyFile, "--tls-key", keyFile}, "--tls-cert " + keyFile + ": no PEM CERTIFICATE block in it"},
		{"key of another certificate", []string{"--tls-cert", certFile, "--tls-key", otherKey},
			"--tls-key " + otherKey + ": tls: private key does not match public key"},
	} {
		dir := t.TempDir()
		args := append([]string{"eventsd", "--data-dir", dir, "--nats-listen", "0", "--listen", "127.0.0.1:0"}, tt.args...)
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			t.Errorf("%s: the data directory holds %d entries, want none", tt.name, len(entries))
		}
	}
}

// TestCORSOriginsFlag: --cors-origins (or EVENTSD_CORS_ORIGINS) is a comma-separated list,
// spaces around entries and empty entries dropped; an entry that is not an origin stops
// eventsd, naming the flag.
func TestCORSOriginsFlag(t *testing.T) {
	parse := func(args ...string) []string {
		t.Helper()
		var c config
		app := &cli.App{Flags: flags(&c), Action: func(*cli.Context) error { return nil }}
		if err := app.Run(append([]string{"eventsd"}, args...)); err != nil {
			t.Fatal(err)
		}
		return c.corsOrigins
	}
	want := []string{"https://app.example.com", "http://localhost:3000"}
	if got := parse(); got != nil {
		t.Errorf("no --cors-origins: %q, want none", got)
	}
	if got := parse("--cors-origins", " https://app.example.com, ,http://localhost:3000 ,"); !slices.Equal(got, want) {
		t.Errorf("--cors-origins: %q, want %q", got, want)
	}
	t.Setenv("EVENTSD_CORS_ORIGINS", "https://app.example.com,http://localhost:3000")
	if got := parse(); !slices.Equal(got, want) {
		t.Errorf("EVENTSD_CORS_ORIGINS: %q, want %q", got, want)
	}

	// Refused before anything starts: no NATS to wait for, nothing in the data directory.
	dir := t.TempDir()
	err := run(context.Background(), []string{"eventsd", "--data-dir", dir, "--nats-url", "nats://127.0.0.1:1", "--listen", "127.0.0.1:0",
		"--log-level", "error", "--cors-origins", "ftp://files.example.com"}, io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "--cors-origins: sse: invalid CORS origin \"ftp://files.example.com\"") {
		t.Fatalf("--cors-origins ftp://files.example.com: %v, want it refused, naming the flag", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("data directory holds %d entries after a refused start, want none", len(entries))
	}
}
