package sse

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// BodyDeadline cuts off a request body that takes longer than d to arrive, so that clients
// trickling bodies cannot hold connections open. It sets a read deadline for this request only
// (http.Server.ReadTimeout would also end long answers and streams, which read nothing) and
// clears it once the body is read, so the handler may then answer for as long as it needs.
// Requests without a body are left alone.
func BodyDeadline(d time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
				rc := http.NewResponseController(w)
				if rc.SetReadDeadline(time.Now().Add(d)) == nil {
					r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// deadlineBody clears its request's read deadline when the body has been read to its end.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	cleared bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.cleared {
		b.cleared = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// isTimeout reports whether a body read failed because its deadline passed.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
