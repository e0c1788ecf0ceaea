// Command floor measures what Go's net/http alone costs per idle SSE connection: a server whose
// handler sends the headers and waits, and clients in a child process that hold their
// connections open. It is the floor under eventsd's own figure in eventsctl bench's idle
// scenario. It talks to loopback only and stops by itself.
//
//	go run ./bench/floor [-conns 10000]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
)

func main() {
	conns := flag.Int("conns", 10000, "idle connections")
	dial := flag.String("dial", "", "internal: run as the client process against this address")
	flag.Parse()
	if *dial != "" {
		hold(*dial, *conns)
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var open atomic.Int64
	go func() {
		log.Fatal(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			open.Add(1)
			<-r.Context().Done()
		})))
	}()
	runtime.GC()
	rss0 := rss()
	client := exec.Command(os.Args[0], "-dial", ln.Addr().String(), "-conns", fmt.Sprint(*conns))
	client.Stderr = os.Stderr
	if err := client.Start(); err != nil {
		log.Fatal(err)
	}
	defer client.Process.Kill()
	for deadline := time.Now().Add(time.Minute); open.Load() < int64(*conns); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatalf("only %d of %d connections open after a minute", open.Load(), *conns)
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	n := float64(*conns)
	fmt.Printf("plain net/http, %d idle SSE connections: %.1f KiB resident per connection (goroutine stacks %.1f KiB, heap in use %.1f KiB)\n",
		*conns, float64(rss()-rss0)/n, float64(ms.StackInuse)/1024/n, float64(ms.HeapInuse)/1024/n)
}

// hold opens n streams to addr and keeps them open until the parent kills it (or a minute
// passes).
func hold(addr string, n int) {
	held := make([]net.Conn, 0, n)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintf(c, "GET /stream HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", addr)
		held = append(held, c)
		go func() { _, _ = bufio.NewReader(c).ReadString('\n') }()
	}
	time.Sleep(time.Minute)
	fmt.Fprintln(os.Stderr, "floor: client gave up after a minute with", len(held), "connections")
}

// rss returns this process's resident memory in KiB.
func rss() int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		log.Fatal(err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kib)
			return kib
		}
	}
	log.Fatal("no VmRSS in /proc/self/status")
	return 0
}
