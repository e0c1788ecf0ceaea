package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/eventsd/eventsd/routing"
)

// ServeConnections answers every node's GatherConnections with what local returns, until the
// Bus closes.
func (b *Bus) ServeConnections(local func() []byte) error {
	_, err := b.nc.Subscribe(routing.SubjectConnections, func(m *nats.Msg) {
		_ = m.Respond(local())
	})
	if err != nil {
		return fmt.Errorf("bus: serve connections: %w", err)
	}
	return nil
}

// GatherConnections asks every node for its open streams and returns the answers that arrive
// within wait (this node's included).
func (b *Bus) GatherConnections(ctx context.Context, wait time.Duration) ([][]byte, error) {
	inbox := b.nc.NewRespInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return nil, b.wrap("gather connections", err)
	}
	defer sub.Unsubscribe()
	if err := b.nc.PublishRequest(routing.SubjectConnections, inbox, nil); err != nil {
		return nil, b.wrap("gather connections", err)
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var answers [][]byte
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return answers, nil // the wait is over
		}
		answers = append(answers, m.Data)
	}
}
