package client_test

import (
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
)

// echoProto answers with the protocol the request came over.
var echoProto = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) })

// protoOf sends a GET to url with the client cfg makes and returns the major version of the
// protocol it answered over.
func protoOf(t *testing.T, cfg client.TransportConfig, url string) (int, error) {
	t.Helper()
	hc, err := client.NewHTTPClient(cfg)
	if err != nil {
		t.Fatalf("NewHTTPClient(%+v): %v", cfg, err)
	}
	t.Cleanup(hc.CloseIdleConnections)
	if hc.Timeout != 0 {
		t.Fatalf("NewHTTPClient(%+v).Timeout = %s, want 0: a timeout would cut every stream", cfg, hc.Timeout)
	}
	resp, err := hc.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != resp.Proto {
		t.Fatalf("GET %s: the server saw %s, the client %s", url, body, resp.Proto)
	}
	return resp.ProtoMajor, nil
}

// TestTransportTLS: with the CA that signed the server's certificate, the client trusts it and
// speaks HTTP/2 (ALPN); without it, or with another CA, it refuses the certificate.
func TestTransportTLS(t *testing.T) {
	ca := testplane.NewCA(t)
	url := ca.Serve(t, echoProto)

	for _, tc := range []struct {
		name    string
		cfg     client.TransportConfig
		trusted bool
	}{
		{"the server's CA", client.TransportConfig{CAFile: ca.File(t)}, true},
		{"the server's CA, h2c on", client.TransportConfig{CAFile: ca.File(t), H2C: true}, true},
		{"the system's roots", client.TransportConfig{}, false},
		{"another CA", client.TransportConfig{CAFile: testplane.NewCA(t).File(t)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			major, err := protoOf(t, tc.cfg, url)
			var unknown x509.UnknownAuthorityError
			switch {
			case tc.trusted && (err != nil || major != 2):
				t.Fatalf("GET over TLS: HTTP/%d, %v; want HTTP/2", major, err)
			case !tc.trusted && !errors.As(err, &unknown):
				t.Fatalf("GET over TLS: HTTP/%d, %v; want x509.UnknownAuthorityError", major, err)
			}
		})
	}
}

// TestTransportH2C: with H2C the client speaks HTTP/2 without TLS to a server that takes it;
// without, HTTP/1.1.
func TestTransportH2C(t *testing.T) {
	url := testplane.ServeH2C(t, echoProto)
	for _, tc := range []struct {
		h2c  bool
		want int
	}{{true, 2}, {false, 1}} {
		if major, err := protoOf(t, client.TransportConfig{H2C: tc.h2c}, url); err != nil || major != tc.want {
			t.Errorf("GET with H2C %t: HTTP/%d, %v; want HTTP/%d", tc.h2c, major, err, tc.want)
		}
	}
}

// TestTransportBadCA: a CA file that cannot be read, or holds no certificate, is an error that
// names it.
func TestTransportBadCA(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, keyFile := testplane.NewCA(t).Issue(t, "127.0.0.1") // PEM, but a key
	for _, tc := range []struct {
		name, file string
		want       error
	}{
		{"missing", filepath.Join(dir, "missing.pem"), fs.ErrNotExist},
		{"not PEM", notPEM, client.ErrNoCertificate},
		{"a key", keyFile, client.ErrNoCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.NewTransport(client.TransportConfig{CAFile: tc.file})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("NewTransport(CAFile %s): %v, want %v naming the file", tc.file, err, tc.want)
			}
		})
	}
}
