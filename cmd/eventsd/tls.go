package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// certFiles is the HTTPS certificate, read from --tls-cert and --tls-key and read again from
// them on SIGHUP. Each TLS handshake takes the certificate current at its start: connections
// already open keep theirs, and their streams go on.
type certFiles struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

// loadCertFiles reads the certificate and its key, and logs what it loaded.
func loadCertFiles(certFile, keyFile string, log *slog.Logger) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile}
	cert, err := c.load()
	if err != nil {
		return nil, err
	}
	c.logLoaded(log, "TLS certificate loaded", cert)
	return c, nil
}

// load reads the files and, if they hold a certificate and its key, serves it from now on.
// Otherwise the certificate served stays; the error names the flag and file at fault.
func (c *certFiles) load() (*tls.Certificate, error) {
	certPEM, err := readFlagFile("tls-cert", c.certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := readFlagFile("tls-key", c.keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if cerr := checkCertPEM(certPEM); cerr != nil {
			return nil, fmt.Errorf("--tls-cert %s: %w", c.certFile, cerr)
		}
		return nil, fmt.Errorf("--tls-key %s: %w", c.keyFile, err)
	}
	if cert.Leaf == nil { // left out under GODEBUG=x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("--tls-cert %s: %w", c.certFile, err)
		}
	}
	c.current.Store(&cert)
	return &cert, nil
}

// readFlagFile reads the file that --flag names.
func readFlagFile(flag, name string) ([]byte, error) {
	b, err := os.ReadFile(name)
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		err = pe.Err // the message names the file already
	}
	if err != nil {
		return nil, fmt.Errorf("--%s %s: %w", flag, name, err)
	}
	return b, nil
}

// checkCertPEM says what is wrong with a certificate file's first certificate, if anything:
// when a key pair does not load, it tells the certificate's fault from the key's.
func checkCertPEM(b []byte) error {
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			return errors.New("no PEM CERTIFICATE block in it")
		}
		if block.Type == "CERTIFICATE" {
			_, err := x509.ParseCertificate(block.Bytes)
			return err
		}
	}
}

// tlsConfig is the server's TLS configuration: TLS 1.2 or later, HTTP/2 offered first by ALPN,
// and the current certificate.
func (c *certFiles) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.current.Load(), nil
		},
	}
}

// logLoaded logs a certificate just loaded, with its expiry, and warns if it has expired.
func (c *certFiles) logLoaded(log *slog.Logger, msg string, cert *tls.Certificate) {
	leaf := cert.Leaf
	log.Info(msg, "file", c.certFile, "subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "expires", leaf.NotAfter)
	if time.Now().After(leaf.NotAfter) {
		log.Warn("the TLS certificate has expired: clients will refuse it", "file", c.certFile, "expired", leaf.NotAfter)
	}
}

// reload reads the TLS certificate and key again from their files, as SIGHUP asks: new
// connections get the new certificate, open ones and their streams go on with the old. A
// certificate that does not load is logged, and the one served stays.
func (d *daemon) reload() {
	if d.certs == nil {
		d.log.Info("SIGHUP: nothing to reload (no --tls-cert)")
		return
	}
	cert, err := d.certs.load()
	if err != nil {
		d.log.Error("TLS certificate not reloaded: the previous one is still served", "err", err)
		return
	}
	d.certs.logLoaded(d.log, "TLS certificate reloaded", cert)
}
