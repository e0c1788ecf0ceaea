package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/eventsd/eventsd/client"
)

func ExampleReader() {
	stream := "id: 41-dn4b0zxj8p00\ndata: {\"type\":\"RUN_STARTED\"}\n\n" +
		": heartbeat\n\n" +
		"event: resync\ndata: {\"type\":\"resync\",\"reason\":\"cursor_expired\"}\n\n"
	r := client.NewReader(strings.NewReader(stream), 1<<20)
	for {
		f, err := r.Next()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("id=%q event=%q data=%s\n", f.ID, f.Event, f.Data)
	}
	// Output:
	// id="41-dn4b0zxj8p00" event="" data={"type":"RUN_STARTED"}
	// id="" event="resync" data={"type":"resync","reason":"cursor_expired"}
	// EOF
}

func ExampleFollower() {
	// A server that sends one event per connection and then drops it, as a flaky network
	// would; it resumes after the Last-Event-ID the client sends.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next := 1
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			last, _ := strconv.Atoi(id)
			next = last + 1
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: %d\ndata: {\"n\":%d}\n\n", next, next)
	}))
	defer srv.Close()

	f, err := client.NewFollower(client.FollowerConfig{
		URL:        srv.URL + "/api/v1/stream/agui",
		Token:      "TOKEN", // from eventsctl token --user alice
		MinBackoff: time.Millisecond,
		OnRetry: func(r client.Retry) {
			fmt.Printf("reconnecting after %s: %v\n", r.LastEventID, r.Err)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	errEnough := errors.New("enough")
	err = f.Follow(context.Background(), func(fr client.Frame) error {
		fmt.Printf("event %s: %s\n", fr.ID, fr.Data)
		if fr.ID == "3" {
			return errEnough
		}
		return nil
	})
	fmt.Println(err, "at", f.LastEventID())
	// Output:
	// event 1: {"n":1}
	// reconnecting after 1: client: the server ended the stream
	// event 2: {"n":2}
	// reconnecting after 2: client: the server ended the stream
	// event 3: {"n":3}
	// enough at 2
}

// A follower of a server whose certificate a private CA signed: the client trusts that CA, and
// speaks HTTP/2 when the server offers it. (No output: it needs such a server.)
func ExampleNewHTTPClient() {
	hc, err := client.NewHTTPClient(client.TransportConfig{CAFile: "/etc/eventsd/ca.pem"})
	if err != nil {
		fmt.Println(err) // e.g. client: no PEM certificate in CA file /etc/eventsd/ca.pem
		return
	}
	f, err := client.NewFollower(client.FollowerConfig{
		URL:        "https://events.internal:8443/api/v1/stream/agui",
		Token:      "TOKEN",
		HTTPClient: hc,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	err = f.Follow(context.Background(), func(fr client.Frame) error {
		fmt.Printf("event %s: %s\n", fr.ID, fr.Data)
		return nil
	})
	fmt.Println(err)
}
