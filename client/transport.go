package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// ErrNoCertificate is returned by NewTransport for a CA file that holds no PEM certificate.
var ErrNoCertificate = errors.New("client: no PEM certificate")

// TransportConfig says how to reach eventsd. The zero value reaches a server whose certificate
// the system trusts, over HTTP/2 or HTTP/1.1 as TLS negotiates, or an http:// one over HTTP/1.1.
type TransportConfig struct {
	// CAFile names a PEM file of the certificates of the authority that signed eventsd's
	// certificate, for a server with a private CA. They replace the system's roots; empty
	// keeps the system's.
	CAFile string
	// H2C speaks HTTP/2 without TLS to http:// URLs, with prior knowledge (no upgrade): for an
	// eventsd run with --h2c. HTTP/1.1 is then off, and https:// URLs go over HTTP/2 too.
	H2C bool
}

// NewTransport returns a transport for eventsd, set as cfg says. Over TLS it negotiates
// HTTP/2 by ALPN, falling back to HTTP/1.1. It bounds connecting (dial and TLS handshake), not
// the requests: a stream lasts as long as its context.
func NewTransport(cfg TransportConfig) (*http.Transport, error) {
	var roots *x509.CertPool // nil: the system's
	if cfg.CAFile != "" {
		var err error
		if roots, err = loadCA(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	t := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConns:        100,
		IdleConnTimeout:     90 * time.Second,
		// A TLSClientConfig of one's own turns Go's HTTP/2 off unless it is asked for.
		ForceAttemptHTTP2: true,
	}
	if cfg.H2C {
		t.Protocols = new(http.Protocols)
		t.Protocols.SetHTTP2(true)
		// Without HTTP/1 in the set, http:// URLs go over HTTP/2 with prior knowledge.
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	return t, nil
}

// NewHTTPClient returns a client on NewTransport(cfg), as FollowerConfig.HTTPClient takes it. It
// has no Timeout, which would cut every stream: a request is bounded by its context.
func NewHTTPClient(cfg TransportConfig) (*http.Client, error) {
	t, err := NewTransport(cfg)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t}, nil
}

// loadCA reads the PEM certificates of name into a new pool.
func loadCA(name string) (*x509.CertPool, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("client: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%w in CA file %s", ErrNoCertificate, name)
	}
	return pool, nil
}
