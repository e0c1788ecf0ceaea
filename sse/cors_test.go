package sse_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventsd/eventsd/auth"
	sseclient "github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
)

const (
	appOrigin  = "https://app.example.com"
	evilOrigin = "https://evil.example"
	anEvent    = `{"type":"CUSTOM","name":"n","value":1}`
)

// send makes one request through hc with hdr (a value of "" removes a header) and returns the
// answer with its body read.
func send(t *testing.T, hc *http.Client, method, url, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// preflight is what a browser sends before a cross-origin method with headers of its own.
func preflight(origin, method, headers string) map[string]string {
	return map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
}

// granted returns the Access-Control-Allow-* headers of an answer, which grant an origin
// something.
func granted(h http.Header) []string {
	var names []string
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-Allow-") {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return names
}

// TestCORSListedOrigin: a listed origin is allowed, with credentials, on a stream, on ingress
// and on every error answer, whose Retry-After it may read.
func TestCORSListedOrigin(t *testing.T) {
	p := newPlane(t, sse.Config{CORSOrigins: []string{appOrigin, "http://localhost:3000"}, MaxConnsPerUser: 1})
	alice := token(t, "alice")
	c := p.open(t, "/api/v1/stream/agui", alice, map[string]string{"Origin": appOrigin})
	tests := []struct {
		name, method, path, tok, contentType string
		status                               int
	}{
		{"ingress", "POST", "/api/v1/events/agui", alice, "application/json", 200},
		{"webhook", "POST", "/api/v1/webhook/agui", alice, "application/json", 200},
		{"401 without a token", "GET", "/api/v1/stream/agui", "", "", 401},
		{"404", "GET", "/api/v1/nowhere", alice, "", 404},
		{"405", "DELETE", "/api/v1/events/agui", alice, "application/json", 405},
		{"414", "GET", "/api/v1/stream/agui?types=" + strings.Repeat("A", 5000), alice, "", 414},
		{"415", "POST", "/api/v1/events/agui", alice, "text/plain", 415},
		{"429 past the streams per user", "GET", "/api/v1/stream/a2a", alice, "", 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Origin": appOrigin, "Content-Type": tt.contentType}
			if tt.tok != "" {
				hdr["Authorization"] = "Bearer " + tt.tok
			}
			body := anEvent
			if strings.Contains(tt.path, "webhook") {
				body = `{"type":"CUSTOM","name":"n","value":1,"user_id":"alice"}`
			}
			resp, _ := send(t, http.DefaultClient, tt.method, p.url+tt.path, body, hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d, want %d", tt.method, tt.path[:min(len(tt.path), 60)], resp.StatusCode, tt.status)
			}
			checkCredentialed(t, resp.Header, appOrigin)
		})
	}
	checkCredentialed(t, c.resp.Header, appOrigin)
	if f := c.next(t); !strings.Contains(f.Data, `"CUSTOM"`) {
		t.Fatalf("the stream opened from %s showed %s, want the event published", appOrigin, f.Data)
	}
}

// checkCredentialed checks the headers that let origin read an answer with credentials.
func checkCredentialed(t *testing.T, h http.Header, origin string) {
	t.Helper()
	for k, want := range map[string]string{
		"Access-Control-Allow-Origin":      origin,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Expose-Headers":    "Retry-After",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !slices.Contains(h.Values("Vary"), "Origin") {
		t.Errorf("Vary = %q, want Origin in it: the answer depends on the Origin", h.Values("Vary"))
	}
}

// TestCORSPreflight: a listed origin's preflight is answered 204 with what it asked for, before
// auth; an unlisted origin's, or one asking for a method or header not allowed, gets nothing.
func TestCORSPreflight(t *testing.T) {
	p := newPlane(t, sse.Config{CORSOrigins: []string{appOrigin}})
	tests := []struct {
		name, origin, path, method, headers string
		grant                               bool
		allowHeaders                        string // when granted
	}{
		{"stream", appOrigin, "/api/v1/stream/agui", "GET", "authorization,last-event-id", true, "Authorization, Last-Event-Id"},
		{"ingress", appOrigin, "/api/v1/events/agui", "POST", "authorization,content-type,idempotency-key", true, "Authorization, Content-Type, Idempotency-Key"},
		{"session", appOrigin, "/api/v1/session", "POST", "authorization", true, "Authorization"},
		{"session delete", appOrigin, "/api/v1/session", "DELETE", "", true, ""},
		{"unlisted origin", evilOrigin, "/api/v1/events/agui", "POST", "authorization,content-type", false, ""},
		{"unlisted origin, no headers", evilOrigin, "/api/v1/session", "DELETE", "", false, ""},
		{"null origin", "null", "/api/v1/stream/agui", "GET", "authorization", false, ""},
		{"listed origin as a prefix", appOrigin + ".evil.example", "/api/v1/stream/agui", "GET", "authorization", false, ""},
		{"method not allowed", appOrigin, "/api/v1/events/agui", "PUT", "content-type", false, ""},
		{"header not allowed", appOrigin, "/api/v1/events/agui", "POST", "content-type,x-user-id", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := send(t, http.DefaultClient, http.MethodOptions, p.url+tt.path, "", preflight(tt.origin, tt.method, tt.headers))
			if resp.StatusCode != http.StatusNoContent || body != "" {
				t.Fatalf("preflight = %d %q, want 204 and no body", resp.StatusCode, body)
			}
			if !tt.grant {
				if g := granted(resp.Header); len(g) > 0 {
					t.Fatalf("preflight from %s for %s granted %v, want nothing", tt.origin, tt.method, g)
				}
				return
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":      tt.origin,
				"Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods":     tt.method,
				"Access-Control-Allow-Headers":     tt.allowHeaders,
				"Access-Control-Max-Age":           "600",
			}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

// TestCORSUnlistedOrigin: an origin not listed exactly gets an answer with no grant, which a
// browser keeps from its page.
func TestCORSUnlistedOrigin(t *testing.T) {
	p := newPlane(t, sse.Config{CORSOrigins: []string{appOrigin}})
	alice := token(t, "alice")
	for _, origin := range []string{evilOrigin, "null", "", "http://app.example.com", "HTTPS://APP.EXAMPLE.COM",
		"https://app.example.com:443", appOrigin + ".evil.example", "https://sub.app.example.com"} {
		for _, tt := range []struct{ method, path string }{{"GET", "/api/v1/connections"}, {"POST", "/api/v1/events/agui"}, {"GET", "/api/v1/nowhere"}} {
			hdr := map[string]string{"Authorization": "Bearer " + alice, "Content-Type": "application/json"}
			req, _ := http.NewRequest(tt.method, p.url+tt.path, strings.NewReader(anEvent))
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			req.Header["Origin"] = []string{origin} // kept when empty: an Origin header with no value
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if g := granted(resp.Header); len(g) > 0 {
				t.Errorf("%s %s from Origin %q granted %v, want nothing", tt.method, tt.path, origin, g)
			}
		}
	}
	// A request with no Origin (not from a browser page of another origin) is served as ever.
	resp, _ := send(t, http.DefaultClient, "GET", p.url+"/api/v1/connections", "", map[string]string{"Authorization": "Bearer " + alice})
	if resp.StatusCode != http.StatusOK || len(granted(resp.Header)) > 0 {
		t.Fatalf("GET without Origin = %d granting %v, want 200 granting nothing", resp.StatusCode, granted(resp.Header))
	}
}

// TestCORSAnyOrigin: "*" lets every origin read answers, and never with credentials.
func TestCORSAnyOrigin(t *testing.T) {
	p := newPlane(t, sse.Config{CORSOrigins: []string{"*"}})
	alice := token(t, "alice")
	c := p.open(t, "/api/v1/stream/agui", alice, map[string]string{"Origin": evilOrigin})
	answers := map[string]http.Header{"stream": c.resp.Header}
	resp, _ := send(t, http.DefaultClient, "POST", p.url+"/api/v1/events/agui", anEvent,
		map[string]string{"Origin": evilOrigin, "Authorization": "Bearer " + alice, "Content-Type": "application/json"})
	answers["ingress"] = resp.Header
	resp, _ = send(t, http.DefaultClient, "GET", p.url+"/api/v1/stream/agui", "", map[string]string{"Origin": appOrigin})
	answers["401"] = resp.Header
	resp, _ = send(t, http.DefaultClient, http.MethodOptions, p.url+"/api/v1/session", "", preflight(appOrigin, "POST", "authorization"))
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Max-Age") != "600" {
		t.Errorf("preflight = %d, Max-Age %q; want 204, 600", resp.StatusCode, resp.Header.Get("Access-Control-Max-Age"))
	}
	answers["preflight"] = resp.Header
	for name, h := range answers {
		if got := h.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin = %q, want *", name, got)
		}
		if got, ok := h["Access-Control-Allow-Credentials"]; ok {
			t.Errorf("%s: Access-Control-Allow-Credentials = %q, want none with *", name, got)
		}
	}
	// Outside the API (the console, health, metrics) nothing is shared with other origins.
	for _, path := range []string{"/healthz", "/readyz", "/"} {
		resp, _ := send(t, http.DefaultClient, "GET", p.url+path, "", map[string]string{"Origin": evilOrigin})
		if g := granted(resp.Header); len(g) > 0 {
			t.Errorf("GET %s from another origin: granted %v, want nothing", path, g)
		}
	}
}

// TestCORSNone: without CORSOrigins no answer carries a CORS header, and a preflight is
// refused like any other OPTIONS.
func TestCORSNone(t *testing.T) {
	p := newPlane(t, sse.Config{})
	alice := token(t, "alice")
	c := p.open(t, "/api/v1/stream/agui", alice, map[string]string{"Origin": appOrigin})
	answers := map[string]*http.Response{"stream": c.resp}
	answers["ingress"], _ = send(t, http.DefaultClient, "POST", p.url+"/api/v1/events/agui", anEvent,
		map[string]string{"Origin": appOrigin, "Authorization": "Bearer " + alice, "Content-Type": "application/json"})
	answers["401"], _ = send(t, http.DefaultClient, "GET", p.url+"/api/v1/connections", "", map[string]string{"Origin": appOrigin})
	answers["preflight"], _ = send(t, http.DefaultClient, http.MethodOptions, p.url+"/api/v1/events/agui", "", preflight(appOrigin, "POST", "content-type"))
	if code := answers["preflight"].StatusCode; code != http.StatusMethodNotAllowed {
		t.Errorf("preflight = %d, want 405", code)
	}
	for name, resp := range answers {
		for k := range resp.Header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("%s: header %s = %q, want no CORS header", name, k, resp.Header.Get(k))
			}
		}
	}
}

// TestCORSOrigins: NewHandler refuses an entry that is not exactly "*" or scheme://host[:port],
// naming it; it takes the others in the form a browser writes its Origin header.
func TestCORSOrigins(t *testing.T) {
	p := newPlane(t, sse.Config{})
	tests := []struct {
		name    string
		origins []string
		bad     string // the entry named in the error; "" for none
		allowed string // an Origin the handler then allows
	}{
		{"plain", []string{"https://app.example.com"}, "", "https://app.example.com"},
		{"with a port", []string{"http://localhost:3000"}, "", "http://localhost:3000"},
		{"IPv4", []string{"http://127.0.0.1:8080"}, "", "http://127.0.0.1:8080"},
		{"IPv6", []string{"http://[::1]:8080"}, "", "http://[::1]:8080"},
		{"upper case", []string{"HTTPS://App.Example.COM"}, "", "https://app.example.com"},
		{"default port", []string{"https://app.example.com:443"}, "", "https://app.example.com"},
		{"two", []string{"https://a.example", "https://b.example"}, "", "https://b.example"},
		{"star alone", []string{"*"}, "", "https://any.example"},
		{"star with others", []string{"https://a.example", "*"}, "*", ""},
		{"empty entry", []string{""}, "", ""},
		{"no scheme", []string{"app.example.com"}, "app.example.com", ""},
		{"ftp", []string{"ftp://app.example.com"}, "ftp://app.example.com", ""},
		{"path", []string{"https://app.example.com/app"}, "https://app.example.com/app", ""},
		{"trailing slash", []string{"https://app.example.com/"}, "https://app.example.com/", ""},
		{"query", []string{"https://app.example.com?x=1"}, "https://app.example.com?x=1", ""},
		{"empty query", []string{"https://app.example.com?"}, "https://app.example.com?", ""},
		{"fragment", []string{"https://app.example.com#x"}, "https://app.example.com#x", ""},
		{"userinfo", []string{"https://u:p@app.example.com"}, "https://u:p@app.example.com", ""},
		{"wildcard host", []string{"https://*.example.com"}, "https://*.example.com", ""},
		{"null", []string{"null"}, "null", ""},
		{"port zero", []string{"https://app.example.com:0"}, "https://app.example.com:0", ""},
		{"port too big", []string{"https://app.example.com:70000"}, "https://app.example.com:70000", ""},
		{"empty port", []string{"https://app.example.com:"}, "https://app.example.com:", ""},
		{"no host", []string{"https://"}, "https://", ""},
		{"space", []string{" https://app.example.com"}, " https://app.example.com", ""},
		{"unicode host", []string{"https://bücher.example"}, "https://bücher.example", ""},
		{"second bad", []string{"https://ok.example", "https://bad.example/x"}, "https://bad.example/x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := sse.NewHandler(sse.Config{Broker: p.bus, Verifier: auth.NewVerifier(secret), CORSOrigins: tt.origins})
			if tt.allowed == "" {
				if err == nil {
					h.Close()
					t.Fatalf("NewHandler(CORSOrigins: %q) = nil error, want one", tt.origins)
				}
				if !errors.Is(err, sse.ErrInvalidOrigin) || !strings.Contains(err.Error(), `"`+tt.bad+`"`) {
					t.Fatalf("NewHandler(CORSOrigins: %q) = %v, want %v naming %q", tt.origins, err, sse.ErrInvalidOrigin, tt.bad)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewHandler(CORSOrigins: %q) = %v", tt.origins, err)
			}
			t.Cleanup(h.Close)
			w := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodOptions, "/api/v1/stream/agui", nil)
			for k, v := range preflight(tt.allowed, "GET", "authorization") {
				req.Header.Set(k, v)
			}
			h.ServeHTTP(w, req)
			want := tt.allowed
			if tt.origins[0] == "*" {
				want = "*"
			}
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != want {
				t.Fatalf("preflight from %s with CORSOrigins %q: Access-Control-Allow-Origin %q, want %q", tt.allowed, tt.origins, got, want)
			}
		})
	}
}

// tlsNode serves a second API over TLS on p's bus, as another node behind its own address.
func tlsNode(t *testing.T, p *plane, cfg sse.Config) *httptest.Server {
	t.Helper()
	cfg.Broker, cfg.Verifier = p.bus, auth.NewVerifier(secret)
	h, err := sse.NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(h)
	t.Cleanup(ts.Close)
	t.Cleanup(h.Close) // runs first: streams taken over from net/http, which ts.Close does not see
	return ts
}

// TestSession: over TLS a token in the Authorization header becomes the access_token cookie,
// with which alone a browser then opens a stream; DELETE clears it.
func TestSession(t *testing.T) {
	p := newPlane(t, sse.Config{})
	ts := tlsNode(t, p, sse.Config{CORSOrigins: []string{appOrigin}})
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := ts.Client()
	hc.Jar = jar
	alice := token(t, "alice")
	id, err := auth.NewVerifier(secret).Verify(alice)
	if err != nil {
		t.Fatal(err)
	}

	resp, body := send(t, hc, "POST", ts.URL+"/api/v1/session", "", map[string]string{"Authorization": "Bearer " + alice, "Origin": appOrigin})
	if want := `{"expires":"` + id.Expires.UTC().Format(time.RFC3339) + `","user":"alice"}` + "\n"; resp.StatusCode != http.StatusOK || body != want {
		t.Fatalf("POST /api/v1/session = %d %s, want 200 %s", resp.StatusCode, body, want)
	}
	checkCredentialed(t, resp.Header, appOrigin) // so that a browser keeps the cookie
	checkSessionCookie(t, resp, alice, id.Expires)

	// The cookie alone opens a stream, and the stream shows alice's events.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/api/v1/stream/agui", nil)
	stream, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if stream.StatusCode != http.StatusOK {
		t.Fatalf("GET stream with the cookie alone = %d, want 200", stream.StatusCode)
	}
	if code, ans := p.post(t, "/api/v1/events/agui", alice, "application/json", anEvent); code != http.StatusOK {
		t.Fatalf("publish = %d %v", code, ans)
	}
	r := sseclient.NewReader(bufio.NewReader(stream.Body), 1<<20)
	for {
		f, err := r.Next()
		if err != nil {
			t.Fatalf("stream opened with the cookie: %v before alice's event", err)
		}
		if f.Event != "heartbeat" {
			if !strings.Contains(f.Data, `"CUSTOM"`) {
				t.Fatalf("stream opened with the cookie showed %s, want alice's event", f.Data)
			}
			break
		}
	}

	// DELETE clears it, with no token.
	resp, body = send(t, hc, "DELETE", ts.URL+"/api/v1/session", "", nil)
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("DELETE /api/v1/session = %d %q, want 204", resp.StatusCode, body)
	}
	checkSessionCookie(t, resp, "", time.Unix(0, 0))
	if resp, _ := send(t, hc, "GET", ts.URL+"/api/v1/connections", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET with the cookie cleared = %d, want 401", resp.StatusCode)
	}
}

// checkSessionCookie checks that resp sets the access_token cookie to value, until expires,
// with the attributes a cross-site cookie needs; an empty value is a cookie cleared.
func checkSessionCookie(t *testing.T, resp *http.Response, value string, expires time.Time) {
	t.Helper()
	cookies := resp.Cookies()
	want := 1
	if value == "" {
		want = 2 // cleared partitioned, and unpartitioned as the console's is
	}
	if len(cookies) != want {
		t.Fatalf("Set-Cookie %q, want %d cookies", resp.Header.Values("Set-Cookie"), want)
	}
	for i, c := range cookies {
		partitioned := i == 0
		if c.Name != "access_token" || c.Value != value || c.Path != "/" || !c.HttpOnly || !c.Secure ||
			c.SameSite != http.SameSiteNoneMode || c.Partitioned != partitioned || !c.Expires.Equal(expires.Truncate(time.Second)) || c.Domain != "" {
			t.Errorf("Set-Cookie %q, want access_token=%s; Path=/; Expires=%s; HttpOnly; Secure; SameSite=None (Partitioned: %v)",
				c.Raw, value, expires.UTC().Format(http.TimeFormat), partitioned)
		}
		wantMaxAge := 0 // none: the cookie lasts until Expires
		if value == "" {
			wantMaxAge = -1 // Max-Age=0: gone now
		}
		if c.MaxAge != wantMaxAge {
			t.Errorf("Set-Cookie %q: MaxAge %d, want %d", c.Raw, c.MaxAge, wantMaxAge)
		}
	}
}

// TestSessionRefused: without TLS, or without a good token in the Authorization header, no
// cookie is set.
func TestSessionRefused(t *testing.T) {
	p := newPlane(t, sse.Config{})
	ts := tlsNode(t, p, sse.Config{})
	alice := token(t, "alice")
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		tls    bool
		hdr    map[string]string
		status int
		msg    string // in the error
	}{
		{"plain HTTP", false, map[string]string{"Authorization": "Bearer " + alice}, 400, "HTTPS"},
		{"plain HTTP, proxy says http", false, map[string]string{"Authorization": "Bearer " + alice, "X-Forwarded-Proto": "http"}, 400, "HTTPS"},
		{"no token", true, nil, 401, "no token"},
		{"the cookie alone", true, map[string]string{"Cookie": "access_token=" + alice}, 401, "no token"},
		{"not bearer", true, map[string]string{"Authorization": "Basic YWxpY2U6eA=="}, 401, "Bearer"},
		{"bad token", true, map[string]string{"Authorization": "Bearer not.a.jwt"}, 401, "invalid token"},
		{"expired", true, map[string]string{"Authorization": "Bearer " + expired}, 401, "expired"},
		{"other secret", true, map[string]string{"Authorization": "Bearer " + mintWith(t, []byte("other"), "alice")}, 401, "invalid token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, hc := p.url, http.DefaultClient
			if tt.tls {
				url, hc = ts.URL, ts.Client()
			}
			resp, body := send(t, hc, "POST", url+"/api/v1/session", "", tt.hdr)
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, tt.msg) {
				t.Fatalf("POST /api/v1/session = %d %s, want %d, JSON with %q", resp.StatusCode, body, tt.status, tt.msg)
			}
			if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
				t.Fatalf("refused session set %q, want no cookie", sc)
			}
		})
	}
	// A proxy that terminates TLS says so; DELETE works wherever.
	resp, _ := send(t, http.DefaultClient, "POST", p.url+"/api/v1/session", "", map[string]string{"Authorization": "Bearer " + alice, "X-Forwarded-Proto": "https"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v1/session behind a TLS proxy = %d, want 200", resp.StatusCode)
	}
	resp, _ = send(t, http.DefaultClient, "DELETE", p.url+"/api/v1/session", "", nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE /api/v1/session over plain HTTP = %d, want 204", resp.StatusCode)
	}
}

func mintWith(t *testing.T, key []byte, user string) string {
	t.Helper()
	tok, err := auth.Mint(key, user, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestCookieFormPostPublishesNothing: the SameSite=None cookie goes with a form that any site
// can post, but a form can send only urlencoded, multipart or text/plain bodies, and ingress
// takes JSON alone; so a form publishes nothing, even one whose text/plain body is JSON.
func TestCookieFormPostPublishesNothing(t *testing.T) {
	p := newPlane(t, sse.Config{CORSOrigins: []string{appOrigin}})
	alice := token(t, "alice")
	watch := p.open(t, "/api/v1/stream/agui", alice, nil)
	cookie := "access_token=" + alice
	bodies := map[string]string{
		"application/x-www-form-urlencoded": "type=CUSTOM&name=n&value=1",
		"multipart/form-data; boundary=b":   "--b\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nCUSTOM\r\n--b--\r\n",
		"text/plain":                        anEvent,
		"text/plain; charset=UTF-8":         `{"type":"CUSTOM","name":"n","value":1,"x":"="}`,
	}
	for _, path := range []string{"/api/v1/events/agui", "/api/v1/webhook/agui"} {
		for ct, body := range bodies {
			if strings.Contains(path, "webhook") {
				body = strings.Replace(body, `"type"`, `"user_id":"alice","type"`, 1)
			}
			for _, origin := range []string{evilOrigin, appOrigin} {
				resp, ans := send(t, http.DefaultClient, "POST", p.url+path, body, map[string]string{"Cookie": cookie, "Content-Type": ct, "Origin": origin})
				want := http.StatusUnsupportedMediaType // from a listed origin: not JSON
				if origin == evilOrigin {
					want = http.StatusForbidden // the cookie is not taken from there
				}
				if resp.StatusCode != want {
					t.Errorf("form POST %s as %s from %s with the cookie = %d %s, want %d", path, ct, origin, resp.StatusCode, ans, want)
				}
			}
		}
	}
	if n := p.msgs(t, routing.StreamAGUI); n != 0 {
		t.Fatalf("%d events stored by form posts, want none", n)
	}
	// The same cookie with JSON, which a page can send only through fetch (and, cross-origin,
	// only from a listed origin after a preflight), publishes: the cookie was good.
	resp, _ := send(t, http.DefaultClient, "POST", p.url+"/api/v1/events/agui", `{"type":"CUSTOM","name":"marker","value":1}`,
		map[string]string{"Cookie": cookie, "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("JSON POST with the cookie = %d, want 200", resp.StatusCode)
	}
	if f := watch.next(t); !strings.Contains(f.Data, `"marker"`) {
		t.Fatalf("alice's stream showed %s first, want the JSON event: no form post published", f.Data)
	}
}

// TestCookieFromAnotherSite: the SameSite=None cookie goes with a request from any site, so a
// request a browser makes from an origin not listed is refused when the cookie is all it has:
// otherwise any page the user opens could hold the user's streams (up to the user's limit) or
// publish in the user's name, even without reading the answers.
func TestCookieFromAnotherSite(t *testing.T) {
	p := newPlane(t, sse.Config{CORSOrigins: []string{appOrigin}, MaxConnsPerUser: 1})
	alice := token(t, "alice")
	cookie := "access_token=" + alice
	for _, c := range []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"unlisted origin, cross-site", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"unlisted origin, same site", map[string]string{"Origin": "https://other.example.com", "Sec-Fetch-Site": "same-site"}, http.StatusForbidden},
		{"unlisted origin, no Sec-Fetch-Site", map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden},
		{"opaque origin", map[string]string{"Origin": "null", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"cross-site without Origin", map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"listed origin", map[string]string{"Origin": appOrigin, "Sec-Fetch-Site": "cross-site"}, http.StatusOK},
		{"same origin", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"the server's own origin, no Sec-Fetch-Site", map[string]string{"Origin": p.url}, http.StatusOK},
		{"typed in the address bar", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK},
		{"not a browser", map[string]string{}, http.StatusOK},
	} {
		c.hdr["Cookie"] = cookie
		resp := p.get(t, "/api/v1/connections", "", c.hdr)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
	// A token in the header is the caller's own, from wherever it comes.
	resp := p.get(t, "/api/v1/connections", alice, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Bearer token from another site: %d, want 200", resp.StatusCode)
	}

	evil := map[string]string{"Cookie": cookie, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
	resp = p.get(t, "/api/v1/stream/agui", "", evil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("stream with the cookie from another site: %d, want 403", resp.StatusCode)
	}
	p.open(t, "/api/v1/stream/agui", alice, nil).close() // the one stream alice may have is still hers
	before := p.msgs(t, "AGUI")
	resp, body := send(t, http.DefaultClient, http.MethodPost, p.url+"/api/v1/events/agui", anEvent,
		map[string]string{"Cookie": cookie, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "--cors-origins") {
		t.Fatalf("publish with the cookie from another site: %d %s, want 403 naming --cors-origins", resp.StatusCode, body)
	}
	if after := p.msgs(t, "AGUI"); after != before {
		t.Fatalf("%d events stored by a refused publish", after-before)
	}
}
