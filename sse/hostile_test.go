package sse_test

import (
	"errors"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
	"github.com/eventsd/eventsd/sse"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStreamLimits(t *testing.T) {
	p := newPlane(t, sse.Config{MaxConnsPerUser: 2, MaxConns: 3})
	alice, bob, carol := token(t, "alice"), token(t, "bob"), token(t, "carol")
	a1 := p.open(t, "/api/v1/stream/agui", alice, nil)
	p.open(t, "/api/v1/stream/a2a", alice, nil)
	status := func(tok string) (int, string) {
		resp := p.get(t, "/api/v1/stream/agui", tok, nil)
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if code, retry := status(alice); code != http.StatusTooManyRequests || retry == "" {
		t.Fatalf("third stream for alice: %d, Retry-After %q; want 429 with Retry-After", code, retry)
	}
	p.open(t, "/api/v1/stream/agui", bob, nil)
	if code, _ := status(carol); code != http.StatusTooManyRequests {
		t.Fatalf("fourth stream on a node limited to 3: %d, want 429", code)
	}
	a1.close()
	waitFor(t, "alice's first stream to end", func() bool {
		resp := p.get(t, "/api/v1/connections", alice, nil)
		var c struct{ Count int }
		decode(t, resp, &c)
		return c.Count == 1
	})
	p.open(t, "/api/v1/stream/agui", carol, nil)
}

func TestIngressRateLimit(t *testing.T) {
	p := newPlane(t, sse.Config{IngressRate: 5})
	tok := token(t, "alice")
	limited := 0
	for range 20 {
		code, _ := p.post(t, "/api/v1/events/agui", tok, "application/json", `{"type":"CUSTOM","name":"n","value":1}`)
		switch code {
		case http.StatusOK:
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("publish: %d", code)
		}
	}
	if limited == 0 {
		t.Fatal("20 publishes at once under a limit of 5 a second: none refused")
	}
	if n := p.msgs(t, routing.StreamAGUI); int(n) != 20-limited {
		t.Fatalf("%d stored after %d refusals of 20, want %d", n, limited, 20-limited)
	}
	// Another user has a budget of their own.
	if code, _ := p.post(t, "/api/v1/events/agui", token(t, "bob"), "application/json", `{"type":"CUSTOM","name":"n","value":1}`); code != http.StatusOK {
		t.Fatalf("bob's publish: %d, want 200", code)
	}
}

// TestHostileRequests sends requests meant to confuse routing or framing, checks each answer,
// and that nothing reached alice, who follows every channel, or was stored by a refused request.
func TestHostileRequests(t *testing.T) {
	p := newPlane(t, sse.Config{CORSOrigins: []string{appOrigin}})
	alice := token(t, "alice")
	svc := token(t, "svc", auth.RoleService)
	watch := p.open(t, "/api/v1/stream/contexts?types=CUSTOM,TASK_SUBMITTED,CONTEXT_CREATED", alice, nil)
	tests := []struct {
		name   string
		method string
		path   string
		tok    string
		body   string
		status int
		stored int               // events this request stores (under the user it names)
		hdr    map[string]string // headers set over the defaults; "" removes one
		allow  string            // the Access-Control-Allow-Origin answered; "": no grant at all
	}{
		{"user with dot", "POST", "/api/v1/events/agui?user=" + url.QueryEscape("alice.x"), svc, `{"type":"CUSTOM","name":"n","value":1}`, 200, 1, nil, ""},
		{"user star", "POST", "/api/v1/events/agui?user=*", svc, `{"type":"CUSTOM","name":"n","value":1}`, 200, 1, nil, ""},
		{"user gt", "POST", "/api/v1/events/agui?user=" + url.QueryEscape(">"), svc, `{"type":"CUSTOM","name":"n","value":1}`, 200, 1, nil, ""},
		{"user alice.*", "POST", "/api/v1/events/a2a?user=" + url.QueryEscape("alice.*"), svc, `{"type":"TASK_SUBMITTED","taskId":"t","contextId":"c","agentName":"a"}`, 200, 1, nil, ""},
		{"user with space", "POST", "/api/v1/events/agui?user=" + url.QueryEscape("alice "), svc, `{"type":"CUSTOM","name":"n","value":1}`, 200, 1, nil, ""},
		{"user spelled as alice's base64 token", "POST", "/api/v1/events/agui?user=" + url.QueryEscape("~YWxpY2U"), svc, `{"type":"CUSTOM","name":"n","value":1}`, 200, 1, nil, ""},
		{"user spelled as a subject", "POST", "/api/v1/events/agui?user=" + url.QueryEscape("agui.alice.CUSTOM"), svc, `{"type":"CUSTOM","name":"n","value":1}`, 200, 1, nil, ""},
		{"user with control", "POST", "/api/v1/events/system?user=" + url.QueryEscape("alice\x00\r\n"), svc, `{"type":"CONTEXT_CREATED","contextId":"c","name":"n"}`, 200, 1, nil, ""},
		{"user invalid UTF-8", "POST", "/api/v1/events/agui?user=%FF", svc, `{"type":"CUSTOM","name":"n","value":1}`, 400, 0, nil, ""},
		{"user empty", "POST", "/api/v1/events/agui?user=", svc, `{"type":"CUSTOM","name":"n","value":1}`, 400, 0, nil, ""},
		{"user 10 KB in the query", "POST", "/api/v1/events/agui?user=" + strings.Repeat("a", 10<<10), svc, `{"type":"CUSTOM","name":"n","value":1}`, 414, 0, nil, ""},
		{"user 10 KB in a webhook", "POST", "/api/v1/webhook/agui", svc, `{"type":"CUSTOM","name":"n","value":1,"user_id":"` + strings.Repeat("a", 10<<10) + `"}`, 400, 0, nil, ""},
		{"type with subject syntax", "POST", "/api/v1/events/agui", alice, `{"type":"CUSTOM.>","name":"n","value":1}`, 400, 0, nil, ""},
		{"type with CR LF", "POST", "/api/v1/events/agui", alice, `{"type":"CUSTOM\r\nX","name":"n","value":1}`, 400, 0, nil, ""},
		{"CR LF inside a field is escaped", "POST", "/api/v1/events/agui?user=bob", svc, `{"type":"CUSTOM","name":"a\r\n\r\ndata: x","value":1}`, 200, 1, nil, ""},
		{"types wildcard", "GET", "/api/v1/stream/agui?types=*", alice, "", 400, 0, nil, ""},
		{"types gt", "GET", "/api/v1/stream/agui?types=" + url.QueryEscape(">"), alice, "", 400, 0, nil, ""},
		{"types subject", "GET", "/api/v1/stream/agui?types=" + url.QueryEscape("X.bob.Y"), alice, "", 400, 0, nil, ""},
		{"types CR LF", "GET", "/api/v1/stream/agui?types=" + url.QueryEscape("X\r\nid: 1"), alice, "", 400, 0, nil, ""},
		{"cursor negative", "GET", "/api/v1/stream/agui?last_event_id=-5", alice, "", 400, 0, nil, ""},
		{"cursor huge", "GET", "/api/v1/stream/agui?last_event_id=99999999999999999999999-1", alice, "", 400, 0, nil, ""},
		{"cursor not numeric", "GET", "/api/v1/stream/agui?last_event_id=abc", alice, "", 400, 0, nil, ""},
		{"cursor CR LF", "GET", "/api/v1/stream/agui?last_event_id=" + url.QueryEscape("1-1\r\ndata: x"), alice, "", 400, 0, nil, ""},
		{"all_users without admin", "GET", "/api/v1/stream/agui?all_users=true", alice, "", 403, 0, nil, ""},
		// Cross-origin: the cookie goes with a request from any site, and is refused from an
		// origin not listed; a form, from a listed origin too, can send no JSON; an origin not
		// listed exactly is granted nothing, a refused preflight included.
		{name: "form POST with the cookie", method: "POST", path: "/api/v1/events/agui", body: "type=CUSTOM&name=n&value=1", status: 403,
			hdr: map[string]string{"Cookie": "access_token=" + alice, "Content-Type": "application/x-www-form-urlencoded", "Origin": evilOrigin}},
		{name: "form POST with the cookie from a listed origin", method: "POST", path: "/api/v1/events/agui", body: "type=CUSTOM&name=n&value=1", status: 415, allow: appOrigin,
			hdr: map[string]string{"Cookie": "access_token=" + alice, "Content-Type": "application/x-www-form-urlencoded", "Origin": appOrigin}},
		{name: "text/plain JSON webhook with the cookie", method: "POST", path: "/api/v1/webhook/agui", body: `{"user_id":"alice","type":"CUSTOM","name":"n","value":1}`, status: 403,
			hdr: map[string]string{"Cookie": "access_token=" + alice, "Content-Type": "text/plain", "Origin": evilOrigin}},
		{name: "multipart POST with the cookie", method: "POST", path: "/api/v1/events/a2a", body: "--b\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nTASK_SUBMITTED\r\n--b--\r\n", status: 403,
			hdr: map[string]string{"Cookie": "access_token=" + alice, "Content-Type": "multipart/form-data; boundary=b", "Origin": evilOrigin}},
		{name: "stream with the cookie from an unlisted origin", method: "GET", path: "/api/v1/stream/agui", status: 403,
			hdr: map[string]string{"Cookie": "access_token=" + alice, "Origin": evilOrigin, "Sec-Fetch-Site": "cross-site"}},
		{name: "session from the cookie alone", method: "POST", path: "/api/v1/session", status: 401,
			hdr: map[string]string{"Cookie": "access_token=" + alice, "X-Forwarded-Proto": "https"}},
		{name: "session over plain HTTP", method: "POST", path: "/api/v1/session", tok: alice, status: 400},
		{name: "POST from an unlisted origin", method: "POST", path: "/api/v1/events/agui?user=bob", tok: svc, body: `{"type":"CUSTOM","name":"n","value":1}`, status: 200, stored: 1,
			hdr: map[string]string{"Origin": evilOrigin}},
		{name: "Origin null", method: "POST", path: "/api/v1/events/agui?user=bob", tok: svc, body: `{"type":"CUSTOM","name":"n","value":1}`, status: 200, stored: 1,
			hdr: map[string]string{"Origin": "null"}},
		{name: "listed origin in upper case", method: "GET", path: "/api/v1/connections", tok: alice, status: 200,
			hdr: map[string]string{"Origin": strings.ToUpper(appOrigin)}},
		{name: "listed origin as a prefix", method: "GET", path: "/api/v1/connections", tok: alice, status: 200,
			hdr: map[string]string{"Origin": appOrigin + ".evil.example"}},
		{name: "listed origin's 401", method: "GET", path: "/api/v1/stream/agui", status: 401, allow: appOrigin,
			hdr: map[string]string{"Origin": appOrigin}},
		{name: "preflight from the listed origin", method: "OPTIONS", path: "/api/v1/events/agui", status: 204, allow: appOrigin,
			hdr: preflight(appOrigin, "POST", "authorization,content-type")},
		{name: "preflight from an unlisted origin", method: "OPTIONS", path: "/api/v1/events/agui", status: 204,
			hdr: preflight(evilOrigin, "POST", "authorization,content-type")},
		{name: "preflight for a header not allowed", method: "OPTIONS", path: "/api/v1/events/agui", status: 204,
			hdr: preflight(appOrigin, "POST", "content-type,x-user-id")},
		{name: "preflight for a method not allowed", method: "OPTIONS", path: "/api/v1/events/agui", status: 204,
			hdr: preflight(appOrigin, "PUT", "content-type")},
	}
	total := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Content-Type": "application/json"}
			if tt.tok != "" {
				hdr["Authorization"] = "Bearer " + tt.tok
			}
			maps.Copy(hdr, tt.hdr)
			resp, _ := send(t, http.DefaultClient, tt.method, p.url+tt.path, tt.body, hdr)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s: %d, want %d", tt.method, tt.path[:min(len(tt.path), 80)], resp.StatusCode, tt.status)
			}
			if tt.status >= 400 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("error answer with Content-Type %q, want JSON", resp.Header.Get("Content-Type"))
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.allow {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tt.allow)
			}
			if g := granted(resp.Header); tt.allow == "" && len(g) > 0 {
				t.Errorf("granted %v, want nothing", g)
			}
			if sc := resp.Header.Values("Set-Cookie"); len(sc) > 0 {
				t.Errorf("Set-Cookie %q, want none", sc)
			}
		})
		total += tt.stored
	}
	stored := 0
	for _, s := range []string{routing.StreamAGUI, routing.StreamA2A, routing.StreamAnalytics} {
		stored += int(p.msgs(t, s))
	}
	ctxStream, err := p.js.Stream(ctxFor(t), routing.StreamContext)
	if err != nil {
		t.Fatal(err)
	}
	info, err := ctxStream.Info(ctxFor(t), jetstream.WithSubjectFilter("context.system.>"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range info.State.Subjects {
		stored += int(n)
	}
	if stored != total {
		t.Errorf("%d events stored, want %d (only the accepted requests')", stored, total)
	}
	// Alice's own marker is the first thing her stream shows: nothing above leaked to her.
	p.publishNATS(t, "context.system.alice.CONTEXT_CREATED", `{"marker":true}`)
	if f := watch.next(t); f.Data != `{"protocol":"system","event":{"marker":true}}` {
		t.Fatalf("alice's stream showed %s before her own event", f.Data)
	}
}

// TestSubjectsThatNameNoUser: a subject that is not <channel>.<user token>.<TYPE> reaches no
// one on any path. The streams refuse what their subjects can (a JetStream publisher gets an
// error); what they still store (a lower-case type, a token UserToken would not write) is
// skipped and counted, live, for an all-users stream and when resuming by cursor alike.
func TestSubjectsThatNameNoUser(t *testing.T) {
	m := &countingMetrics{}
	tp := testplane.StartWith(t, sse.Config{Metrics: m}, bus.Config{Delivery: delivery, Metrics: m})
	p := &plane{Plane: tp, url: tp.URL, bus: tp.Bus, nc: tp.NC, js: tp.JS}
	for _, subject := range []string{"agui.acme.alice.CUSTOM", "agui.CUSTOM", "agui.alice", "context.system.alice.x.CUSTOM", "analytics.alice.A.B"} {
		if _, err := p.js.Publish(ctxFor(t), subject, []byte(`{"type":"CUSTOM"}`)); !errors.Is(err, jetstream.ErrNoStreamResponse) {
			t.Errorf("JetStream publish to %s: %v, want %v", subject, err, jetstream.ErrNoStreamResponse)
		}
	}
	alice := p.open(t, "/api/v1/stream/agui", token(t, "alice"), nil)
	all := p.open(t, "/api/v1/stream/agui?all_users=true", token(t, "root", auth.RoleAdmin), nil)
	p.publishNATS(t, "agui.alice.CUSTOM", `{"first":true}`)
	first := all.next(t)
	if f := alice.next(t); f.ID != first.ID {
		t.Fatalf("alice got %s first, the all-users stream %s", f.ID, first.ID)
	}
	p.publishNATS(t, "agui.alice.custom", `{"bad":"type"}`)
	p.publishNATS(t, "agui.~YWxpY2U.CUSTOM", `{"bad":"token"}`) // "alice", in a form UserToken never writes
	p.publishNATS(t, "agui.alice.CUSTOM", `{"marker":true}`)
	for name, c := range map[string]*client{"alice's": alice, "the all-users": all} {
		if f := c.next(t); f.Data != `{"marker":true}` {
			t.Fatalf("%s stream showed %s, want the marker: nothing stored under a bad subject", name, f.Data)
		}
	}
	// The shared feed counts each event once; with a consumer per connection, each connection
	// whose filter the subject matched counts it (alice's matches agui.alice.custom).
	want := 2
	if !sharedMode() {
		want = 3
	}
	if got := m.get("skipped agui bad_subject"); got != want {
		t.Errorf("skipped bad_subject = %d, want %d", got, want)
	}
	resumed := p.open(t, "/api/v1/stream/agui?all_users=true", token(t, "root", auth.RoleAdmin), map[string]string{"Last-Event-ID": first.ID})
	if f := resumed.next(t); f.Data != `{"marker":true}` {
		t.Fatalf("resuming after %s showed %s, want the marker", first.ID, f.Data)
	}
	if got := m.get("skipped agui bad_subject"); got != want+2 {
		t.Errorf("skipped bad_subject = %d after the resume replayed both, want %d", got, want+2)
	}
}
