package console_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/eventsd/eventsd/console"
)

// TestHeaders: every console file forbids framing (frame-ancestors 'none') and sniffing.
func TestHeaders(t *testing.T) {
	for _, path := range []string{"/", "/console.js", "/console.css"} {
		rec := httptest.NewRecorder()
		console.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d, want 200", path, rec.Code)
		}
		csp := rec.Header().Get("Content-Security-Policy")
		var directives []string
		for d := range strings.SplitSeq(csp, ";") {
			directives = append(directives, strings.TrimSpace(d))
		}
		for _, want := range []string{"frame-ancestors 'none'", "default-src 'self'", "script-src 'self'"} {
			if !slices.Contains(directives, want) {
				t.Errorf("GET %s: Content-Security-Policy %q, want the directive %q", path, csp, want)
			}
		}
		if got := rec.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", path, got)
		}
	}
}
