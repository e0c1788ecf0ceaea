package client

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HTTPError is an error answer from eventsd: its status and the JSON body
// {"error":...,"field":...} it sends with every error.
type HTTPError struct {
	StatusCode int    // e.g. 400
	Status     string // e.g. "400 Bad Request"
	Message    string // the body's "error", or the body itself when it is not eventsd's JSON
	Field      string // the body's "field": the parameter at fault, when one is
	// RetryAfter is how long the server asks the client to wait before it tries again (its
	// Retry-After header); 0 when it does not say.
	RetryAfter time.Duration
}

// Error quotes the answer, e.g. "eventsd answered 400 Bad Request: malformed cursor (field
// last_event_id)".
func (e *HTTPError) Error() string {
	status := e.Status
	if status == "" {
		status = strconv.Itoa(e.StatusCode) + " " + http.StatusText(e.StatusCode)
	}
	if e.Field != "" {
		return fmt.Sprintf("eventsd answered %s: %s (field %s)", status, e.Message, e.Field)
	}
	return fmt.Sprintf("eventsd answered %s: %s", status, e.Message)
}

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// CheckResponse returns nil for a 1xx or 2xx answer and an *HTTPError for any other, reading
// (at most 64 KiB of) its body. The caller still closes the body.
func CheckResponse(resp *http.Response) error {
	if resp.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var answer struct{ Error, Field string }
	if json.Unmarshal(body, &answer) != nil || answer.Error == "" {
		answer.Error = strings.TrimSpace(string(body))
	}
	return &HTTPError{
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		Message:    answer.Error,
		Field:      answer.Field,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
	}
}

// retryAfter reads a Retry-After header, in seconds or as an HTTP date; 0 when there is none
// or it is past.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, math.MaxInt64/int64(time.Second))) * time.Second
	}
	if at, err := http.ParseTime(h); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
