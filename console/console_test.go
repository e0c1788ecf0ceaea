package console_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/eventsd/eventsd/internal/browsertest"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/sse"
)

// TestConsole drives the page in a real browser: it connects, shows a live event, filters,
// pretty-prints on click, resumes after the server drops the stream, and publishes from its form.
func TestConsole(t *testing.T) {
	p := testplane.Start(t, sse.Config{})
	ctx := browsertest.Start(t) // after the plane, so the browser closes first and its streams end
	tok := testplane.Token(t, "alice")
	publish := func(typ, data string) {
		t.Helper()
		if _, err := p.JS.Publish(ctx, "agui.alice."+typ, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	row := func(typ string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf(`#events li[data-type=%q]`, typ)) }

	do("open the page with a token", chromedp.Navigate(p.URL+"/#token="+tok+"&channel=agui"),
		chromedp.WaitVisible(chromedp.CSS(`#state.live`)))
	publish("RUN_STARTED", `{"type":"RUN_STARTED","timestamp":1776680130123,"threadId":"t1","runId":"r1"}`)
	publish("TEXT_MESSAGE_CONTENT", `{"type":"TEXT_MESSAGE_CONTENT","timestamp":1776680130124,"messageId":"m1","delta":"Hello"}`)
	do("show live events", chromedp.WaitVisible(row("RUN_STARTED")), chromedp.WaitVisible(row("TEXT_MESSAGE_CONTENT")))

	do("filter by type", chromedp.SendKeys(chromedp.CSS(`#filter`), "RUN_"),
		chromedp.WaitNotVisible(row("TEXT_MESSAGE_CONTENT")), chromedp.WaitVisible(row("RUN_STARTED")))

	do("open an event", chromedp.Click(row("RUN_STARTED")+` button.row`), chromedp.WaitVisible(row("RUN_STARTED")+` pre`))
	if pretty := text(string(row("RUN_STARTED")) + ` pre`); !strings.Contains(pretty, "\n  \"threadId\": \"t1\"") {
		t.Fatalf("expanded event shows %q, want indented JSON", pretty)
	}

	p.DropConnections()
	publish("RUN_FINISHED", `{"type":"RUN_FINISHED","timestamp":1776680130125,"threadId":"t1","runId":"r1"}`)
	do("resume after the server dropped the stream", chromedp.WaitVisible(row("RUN_FINISHED")))
	if state := text(`#state`); !strings.HasPrefix(state, "live (resumed after ") {
		t.Fatalf("state after the drop = %q, want it to say it resumed", state)
	}
	started, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#events li[data-type="RUN_STARTED"]').length`))
	if err != nil || started != 1 {
		t.Fatalf("%d RUN_STARTED rows after resuming (%v), want 1", started, err)
	}

	setForm := `document.getElementById("filter").value = "";
		document.getElementById("filter").dispatchEvent(new Event("input"));
		document.getElementById("pub-body").value = '{"type":"CUSTOM","name":"from-form","value":1}'; true`
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](setForm)); err != nil {
		t.Fatal(err)
	}
	do("publish from the form", chromedp.Click(chromedp.CSS(`#publish button[type=submit]`)),
		chromedp.WaitVisible(row("CUSTOM")))
	if result := text(`#pub-result`); !strings.HasPrefix(result, "published: AGUI #") {
		t.Fatalf("publish result %q", result)
	}
}
