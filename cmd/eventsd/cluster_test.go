package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventsd/eventsd/auth"
	"github.com/eventsd/eventsd/bus"
	"github.com/eventsd/eventsd/client"
	"github.com/eventsd/eventsd/internal/testplane"
	"github.com/eventsd/eventsd/routing"
)

// clusterNode starts an eventsd node on the cluster, sharing one JWT secret.
func clusterNode(t *testing.T, urls string) *daemon {
	t.Helper()
	c := testConfig(t.TempDir())
	c.natsURL, c.jwtSecret, c.replicas = urls, "cluster-secret", 3
	c.maxConnsPerUser = 0
	d, err := start(context.Background(), c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// publishEvent posts event i for alice through node url, retrying (with the same
// Idempotency-Key, so a retry is stored once) until it is accepted.
func publishEvent(ctx context.Context, url, tok string, i int) error {
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/events/agui",
			strings.NewReader(fmt.Sprintf(`{"type":"STEP_STARTED","stepName":"%d"}`, i)))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("step-%d", i))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("event %d never accepted: %v", i, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// follower reads alice's agui steps from the nodes in turn, resuming with the last id after
// every drop, until it has want steps; it reports them in the order received.
func follower(ctx context.Context, urls []string, tok string, lastID *string, want int) ([]int, error) {
	var got []int
	for node := 0; len(got) < want; node = (node + 1) % len(urls) {
		if ctx.Err() != nil {
			seen := map[int]int{}
			for _, v := range got {
				seen[v]++
			}
			var missing []int
			for i := range want - 1 {
				if seen[i] == 0 {
					missing = append(missing, i)
				}
			}
			return got, fmt.Errorf("have %d of %d steps (missing %v): %w", len(got), want, missing, ctx.Err())
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, urls[node]+"/api/v1/stream/agui", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		if *lastID != "" {
			req.Header.Set("Last-Event-ID", *lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			if err == nil {
				resp.Body.Close()
			}
			time.Sleep(50 * time.Millisecond) // that node is away: try the next one shortly
			continue
		}
		r := client.NewReader(resp.Body, 1<<20)
		for len(got) < want {
			f, err := r.Next()
			if err != nil {
				break
			}
			if f.Event != "" {
				continue
			}
			var ev struct{ StepName string }
			if err := json.Unmarshal([]byte(f.Data), &ev); err != nil {
				return got, err
			}
			var i int
			fmt.Sscan(ev.StepName, &i)
			got = append(got, i)
			*lastID = f.ID
		}
		resp.Body.Close()
	}
	return got, nil
}

func checkSteps(t *testing.T, got []int, from, want int) {
	t.Helper()
	if len(got) != want {
		t.Fatalf("got %d steps, want %d", len(got), want)
	}
	for i, v := range got {
		if v != from+i {
			t.Fatalf("step %d is %d: lost, duplicated or out of order", i, v)
		}
	}
}

// sharedConsumer finds the newest shared-feed consumer on the AGUI stream whose name starts
// with prefix (an ordered consumer that was recreated may leave its old self behind for a
// while), and returns its name and the index of the NATS node that holds it.
func sharedConsumer(t *testing.T, urls, prefix string) (name string, node int) {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, routing.StreamAGUI)
	if err != nil {
		t.Fatal(err)
	}
	var newest *jetstream.ConsumerInfo
	list := s.ListConsumers(ctx)
	for info := range list.Info() {
		if strings.HasPrefix(info.Name, prefix) && (newest == nil || info.Created.After(newest.Created)) {
			newest = info
		}
	}
	if list.Err() != nil || newest == nil || newest.Cluster == nil {
		t.Fatalf("no consumer named %s* found (%v)", prefix, list.Err())
	}
	if _, err := fmt.Sscanf(newest.Cluster.Leader, "n%d", &node); err != nil {
		t.Fatalf("consumer %s is on %q", newest.Name, newest.Cluster.Leader)
	}
	return newest.Name, node
}

// TestCluster runs two eventsd nodes on a three-node NATS cluster with R3 streams.
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node NATS cluster")
	}
	cluster := testplane.StartCluster(t, 3)
	a, b := clusterNode(t, cluster.URLs()), clusterNode(t, cluster.URLs())
	defer a.shutdown()
	tok, _ := auth.Mint([]byte("cluster-secret"), "alice", nil, time.Hour)
	admin, _ := auth.Mint([]byte("cluster-secret"), "root", []string{auth.RoleAdmin}, time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// B's shared consumer: an ordered consumer, named <prefix>_<n> for its n-th creation.
	var bShared string

	t.Run("a NATS node stops before a shared consumer's first event", func(t *testing.T) {
		next, body := stream(t, b.httpURL, tok, "")
		defer body.Close()
		// Only B has a stream, so the stream's only shared consumer is B's.
		name, node := sharedConsumer(t, cluster.URLs(), bus.SharedConsumerPrefix)
		bShared = name[:strings.LastIndexByte(name, '_')+1]
		cluster.Stop(node)
		defer cluster.Start(node)
		// Stored while the consumer is gone, before it has delivered anything: recreated, it
		// must start where it began, not at what is new by then.
		if err := publishEvent(ctx, a.httpURL, tok, -1); err != nil {
			t.Fatal(err)
		}
		if f := next(); !strings.Contains(f.Data, `"stepName":"-1"`) {
			t.Fatalf("B streamed %+v, want step -1", f)
		}
	})

	var helloID string // the steps below come after it
	t.Run("published on A reaches B, and both count connections", func(t *testing.T) {
		next, body := stream(t, b.httpURL, tok, "")
		defer body.Close()
		_, bodyA := stream(t, a.httpURL, tok, "")
		defer bodyA.Close()
		post(t, a.httpURL, tok, `{"type":"STEP_STARTED","stepName":"hello"}`)
		f := next()
		if !strings.Contains(f.Data, `"hello"`) {
			t.Fatalf("node B streamed %+v", f)
		}
		helloID = f.ID
		var conns struct {
			Total int
			Nodes int
			Users map[string]int
		}
		req, _ := http.NewRequest(http.MethodGet, a.httpURL+"/api/v1/connections", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&conns)
		resp.Body.Close()
		if conns.Nodes != 2 || conns.Users["alice"] != 2 {
			t.Fatalf("connections = %+v, want alice's 2 streams over 2 nodes", conns)
		}
	})

	// flow publishes steps from..from+n-1 through A while a client follows B (then A), calling
	// midway halfway through, and checks the client got every step once, in order. The client
	// has stopped when it returns, so the next flow starts after the last step it saw.
	flow := func(t *testing.T, from, n int, midway func() error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		type outcome struct {
			got []int
			err error
		}
		followed := make(chan outcome, 1)
		go func() {
			got, err := follower(ctx, []string{b.httpURL, a.httpURL}, tok, &helloID, n)
			followed <- outcome{got, err}
		}()
		published := make(chan error, 1)
		go func() {
			for i := from; i < from+n; i++ {
				if i == from+n/2 {
					if err := midway(); err != nil {
						published <- err
						return
					}
				}
				if err := publishEvent(ctx, a.httpURL, tok, i); err != nil {
					published <- err
					return
				}
			}
		}()
		select {
		case err := <-published:
			cancel()
			<-followed
			t.Fatal(err)
		case o := <-followed:
			if o.err != nil {
				t.Fatal(o.err)
			}
			checkSteps(t, o.got, from, n)
		}
	}

	t.Run("a NATS node stops while events flow", func(t *testing.T) {
		// The node that holds B's shared consumer, so that it has to be recreated elsewhere.
		_, node := sharedConsumer(t, cluster.URLs(), bShared)
		flow(t, 0, 200, func() error { cluster.Stop(node); return nil })
		cluster.Start(node)
	})

	t.Run("an eventsd node goes away; its client resumes on the other", func(t *testing.T) {
		flow(t, 200, 100, b.shutdown)
	})

	t.Run("all of NATS goes down and comes back", func(t *testing.T) {
		next, body := stream(t, a.httpURL, tok, helloID) // helloID is now the last step seen
		defer body.Close()
		for i := range 3 {
			cluster.Stop(i)
		}
		if f := next(); f != (client.Frame{}) {
			t.Fatalf("with NATS gone the stream gave %+v, want its end", f)
		}
		waitHTTP(t, a.httpURL, "GET", "/readyz", tok, "", http.StatusServiceUnavailable)
		waitHTTP(t, a.httpURL, "POST", "/api/v1/events/agui", tok, `{"type":"STEP_STARTED","stepName":"x"}`, http.StatusServiceUnavailable)
		for i := range 3 {
			cluster.Start(i)
		}
		waitHTTP(t, a.httpURL, "GET", "/readyz", tok, "", http.StatusOK)
		if err := publishEvent(ctx, a.httpURL, tok, 300); err != nil {
			t.Fatal(err)
		}
		got, err := follower(ctx, []string{a.httpURL}, tok, &helloID, 1)
		if err != nil || len(got) != 1 || got[0] != 300 {
			t.Fatalf("after NATS came back: %v, %v; want step 300", got, err)
		}
	})
}

// waitHTTP repeats a request until it answers want, failing the test after a minute.
func waitHTTP(t *testing.T, url, method, path, tok, body string, want int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s never answered %d", method, path, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
