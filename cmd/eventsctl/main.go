// Command eventsctl talks to the event plane: it mints tokens, names subjects, publishes events,
// follows streams and shows streams and connections, over NATS or over eventsd's HTTP API.
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
	if err := newApp(os.Stdin, os.Stdout, os.Stderr).RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "eventsctl:", err)
		os.Exit(1)
	}
}
