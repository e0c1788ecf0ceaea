package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/urfave/cli/v2"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/internal/browsertest"
	"github.com/eventsd/eventsd/internal/datadir"
	"github.com/eventsd/eventsd/internal/testplane"
)

// appPage is a single-page app on another site than eventsd's: it gets the session cookie on
// eventsd's origin with its token, then follows the channels of its query over EventSource with
// credentials, recording what each stream receives in window.state.
const appPage = `<!doctype html><meta charset="utf-8"><title>app</title>
<script>
const q = new URLSearchParams(location.search);
const base = q.get("events");
window.state = {session: "", opened: {}, got: {}, closed: {}};
(async () => {
  try {
    const r = await fetch(base + "/api/v1/session", {method: "POST", credentials: "include",
      headers: {Authorization: "Bearer " + q.get("token")}});
    state.session = String(r.status);
  } catch (e) {
    state.session = "refused";
  }
  for (const ch of q.get("channels").split(",")) {
    state.opened[ch] = 0;
    state.got[ch] = [];
    const es = new EventSource(base + "/api/v1/stream/" + ch, {withCredentials: true});
    es.onopen = () => state.opened[ch]++;
    es.onmessage = (m) => state.got[ch].push(JSON.parse(m.data));
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) state.closed[ch] = true; };
  }
})();
</script>`

// site is eventsd over TLS, reached by a browser as https://events.test through a proxy that
// can drop its connections, and the app page on https://app.test. Both names resolve to
// loopback in the browser; as distinct sites they keep each other's cookies apart, which two
// ports of one host would not.
type site struct {
	d      *daemon
	ca     *testplane.CA
	proxy  *tcpProxy
	app    string // the page's origin
	events string // eventsd's origin, as the browser reaches it
	tok    string
	https  *http.Client
	nc     *nats.Conn
}

// startSite starts the app and eventsd; cors says whether eventsd lists the app's origin.
func startSite(t *testing.T, cors bool) *site {
	t.Helper()
	s := &site{ca: testplane.NewCA(t)}
	certFile, keyFile := s.ca.Issue(t, "events.test", "app.test", "127.0.0.1")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, appPage)
	}))
	app.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	app.StartTLS()
	t.Cleanup(app.Close)
	s.app = "https://app.test:" + port(t, app.URL)

	c := defaultConfig(t)
	c.dataDir = t.TempDir()
	c.tlsCert, c.tlsKey = certFile, keyFile
	if cors {
		c.corsOrigins = []string{s.app}
	}
	s.d = startDaemon(t, c)
	secret, err := auth.LoadSecret(c.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if s.tok, err = auth.Mint(secret, "alice", nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	s.proxy = startProxy(t, strings.TrimPrefix(s.d.httpURL, "https://"))
	s.events = "https://events.test:" + port(t, "https://"+s.proxy.ln.Addr().String())
	s.https = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool}, ForceAttemptHTTP2: true}}
	t.Cleanup(s.https.CloseIdleConnections)
	password, err := datadir.ReadOrCreate(c.dataDir, datadir.NATSPasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	if s.nc, err = nats.Connect(s.d.natsURL, nats.UserInfo(datadir.NATSUser, password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.nc.Close)
	return s
}

// browser starts Chromium resolving both sites' names to loopback and trusting the site's
// certificates (and no others).
func (s *site) browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t,
		chromedp.Flag("host-resolver-rules", "MAP app.test 127.0.0.1, MAP events.test 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", s.ca.SPKI(t)))
}

// open navigates tab to the app page following channels.
func (s *site) open(t *testing.T, tab context.Context, channels string) {
	t.Helper()
	q := url.Values{"events": {s.events}, "token": {s.tok}, "channels": {channels}}
	if err := chromedp.Do(tab, chromedp.Navigate(s.app+"/?"+q.Encode())); err != nil {
		t.Fatal(err)
	}
}

// publish stores an event for alice on subject's channel, as a producer on NATS would.
func (s *site) publish(t *testing.T, subject, data string) {
	t.Helper()
	if err := s.nc.Publish(subject, []byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls the page's JavaScript expression until it is true.
func waitFor(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(45*time.Second))); err != nil {
		state, _ := chromedp.Run(tab, chromedp.Evaluate[string](`JSON.stringify(window.state)`))
		t.Fatalf("%s: %v (page state %s)", what, err, state)
	}
}

// TestBrowserOtherOrigin: a page on another site follows a stream on eventsd with the session
// cookie, and resumes after its connection drops; without --cors-origins the page is refused.
func TestBrowserOtherOrigin(t *testing.T) {
	s := startSite(t, true)
	tab := s.browser(t)
	s.open(t, tab, "agui")
	waitFor(t, tab, "the session cookie and an open stream", `state.session === "200" && state.opened.agui === 1`)
	s.publish(t, "agui.alice.CUSTOM", `{"type":"CUSTOM","name":"first","value":1}`)
	waitFor(t, tab, "the first event", `state.got.agui.length === 1`)

	s.proxy.drop()
	s.publish(t, "agui.alice.CUSTOM", `{"type":"CUSTOM","name":"second","value":2}`)
	waitFor(t, tab, "the stream resumed with the event sent while it was away",
		`state.opened.agui === 2 && state.got.agui.length === 2`)
	names, err := chromedp.Run(tab, chromedp.Evaluate[string](`state.got.agui.map(e => e.name).join(",")`))
	if err != nil || names != "first,second" {
		t.Fatalf("events %q (%v), want first,second", names, err)
	}

	refused := startSite(t, false)
	tab = refused.browser(t)
	refused.open(t, tab, "agui")
	waitFor(t, tab, "the session request and the stream refused", `state.session === "refused" && state.closed.agui === true`)
}

// TestBrowserTabsOverHTTP2: 4 tabs of one user each follow agui, a2a and contexts, 12 streams
// under the default limits, and all of them receive events: over HTTP/1.1 a browser opens at
// most 6 connections to a site, so this needs HTTP/2.
func TestBrowserTabsOverHTTP2(t *testing.T) {
	s := startSite(t, true)
	first := s.browser(t)
	tabs := []context.Context{first}
	const channels = "agui,a2a,contexts"
	for i := range 4 {
		if i > 0 { // a new tab of the browser the first one started, with its cookies
			next, cancel := chromedp.NewContext(first)
			t.Cleanup(cancel)
			tabs = append(tabs, next)
		}
		tab := tabs[i]
		s.open(t, tab, channels)
		waitFor(t, tab, fmt.Sprintf("tab %d's three streams", i+1),
			`state.session === "200" && state.opened.agui === 1 && state.opened.a2a === 1 && state.opened.contexts === 1`)
	}
	s.publish(t, "agui.alice.CUSTOM", `{"type":"CUSTOM","name":"to-every-tab","value":1}`)
	s.publish(t, "a2a.alice.TASK_SUBMITTED", `{"type":"TASK_SUBMITTED","taskId":"t1","contextId":"c1","agentName":"a"}`)
	s.publish(t, "context.system.alice.CONTEXT_CREATED", `{"type":"CONTEXT_CREATED","contextId":"c1"}`)
	for i, tab := range tabs {
		waitFor(t, tab, fmt.Sprintf("tab %d's events", i+1), `state.got.agui.some(e => e.name === "to-every-tab") &&
			state.got.a2a.some(e => e.taskId === "t1") &&
			state.got.contexts.some(e => e.protocol === "system" && e.event.contextId === "c1")`)
	}
}

// defaultConfig is eventsd's configuration with every flag at its default, on free loopback
// ports.
func defaultConfig(t *testing.T) config {
	t.Helper()
	var c config
	app := &cli.App{Flags: flags(&c), Action: func(*cli.Context) error { return nil }}
	if err := app.Run([]string{"eventsd"}); err != nil {
		t.Fatal(err)
	}
	c.listen, c.natsListen, c.logLevel = "127.0.0.1:0", "0", "error"
	return c
}

// startDaemon starts eventsd with c until the test ends.
func startDaemon(t *testing.T, c config) *daemon {
	t.Helper()
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	d, err := start(context.Background(), c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.shutdown() })
	return d
}

// port is the port of a URL's host.
func port(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// tcpProxy passes TCP connections through to target and can drop them all, as a network
// failure would, without eventsd knowing beforehand.
type tcpProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.drop() })
	return p
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

// drop closes every connection passed through so far.
func (p *tcpProxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
