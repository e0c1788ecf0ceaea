package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
)

// MaxStreamsPerConn is how many streams IdleHTTP2 puts on one HTTP/2 connection at most: what
// Go's HTTP/2 server lets a connection carry at once unless it is told otherwise
// (SETTINGS_MAX_CONCURRENT_STREAMS). Past the server's limit, Go's client would quietly open
// more connections.
const MaxStreamsPerConn = 250

// CheckHTTP2 refuses streams over conns HTTP/2 connections when one would carry more than
// MaxStreamsPerConn.
func CheckHTTP2(streams, conns int) error {
	if conns < 1 {
		return fmt.Errorf("%d HTTP/2 connections: want 1 or more", conns)
	}
	if per := (streams + conns - 1) / conns; per > MaxStreamsPerConn {
		return fmt.Errorf("%d streams over %d HTTP/2 connections is %d a connection, more than the %d a server allows by default: want %d connections or more",
			streams, conns, per, MaxStreamsPerConn, (streams+MaxStreamsPerConn-1)/MaxStreamsPerConn)
	}
	return nil
}

// client returns c.HTTPClient, or http.DefaultClient.
func (c Config) client() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

// transport returns a copy of the client's transport, or of http.DefaultTransport when the
// client has no *http.Transport, for connections of a scenario's own.
func (c Config) transport() *http.Transport {
	if t, ok := c.client().Transport.(*http.Transport); ok {
		return t.Clone()
	}
	return http.DefaultTransport.(*http.Transport).Clone()
}

// streamClient returns a client with a transport of its own for streams: HTTP/1.1 only, a
// connection for each stream; or with http2, HTTP/2 only, over TLS (ALPN) for an https://
// server and without (h2c, prior knowledge) for an http:// one. dialled, when not nil, counts
// the connections it opens.
func (c Config) streamClient(http2 bool, dialled *atomic.Int64) *http.Client {
	t := c.transport()
	t.Protocols = new(http.Protocols)
	switch {
	case !http2:
		t.Protocols.SetHTTP1(true)
	case strings.HasPrefix(c.Server, "https://"):
		t.Protocols.SetHTTP2(true)
	default:
		t.Protocols.SetUnencryptedHTTP2(true)
	}
	if t.TLSClientConfig != nil {
		// A transport once used has added "h2" here: the protocols above decide afresh.
		t.TLSClientConfig.NextProtos = nil
	}
	if dialled != nil {
		dial := t.DialContext
		if dial == nil {
			dial = (&net.Dialer{}).DialContext
		}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialled.Add(1)
			return dial(ctx, network, addr)
		}
	}
	return &http.Client{Transport: t}
}

// protoOf names the protocol of an answer: "HTTP/1.1" or "HTTP/2.0", with "+TLS" over TLS.
func protoOf(resp *http.Response) string {
	if resp.TLS != nil {
		return resp.Proto + "+TLS"
	}
	return resp.Proto
}
