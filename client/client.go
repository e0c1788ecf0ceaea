// Package client is the Go side of eventsd's HTTP API for programs that read its streams:
// Reader parses Server-Sent Events frames, Follower follows a stream across dropped
// connections, resuming by Last-Event-ID, HTTPError carries eventsd's error answers, and
// NewHTTPClient reaches a server with a private CA or over HTTP/2 without TLS (h2c). It
// depends on the standard library alone, not on the server's packages or on NATS.
package client
