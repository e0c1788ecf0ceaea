// Command eventsd serves the event plane: SSE streams, event ingress and the web console, on an
// embedded JetStream server or an external NATS cluster; over HTTPS with HTTP/2 given a
// certificate, which it reads again on SIGHUP.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "eventsd:", err)
		os.Exit(1)
	}
}
