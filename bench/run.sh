#!/usr/bin/env bash
# Runs eventsctl bench's scenarios against a fresh eventsd per delivery mode, on loopback only.
# Every scenario is bounded (--timeout) and the script stops the eventsd it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)
go build -o "$bin/eventsd" ./cmd/eventsd
go build -o "$bin/eventsctl" ./cmd/eventsctl
for mode in shared consumer; do
	dir=$(mktemp -d)
	"$bin/eventsd" --listen 127.0.0.1:18091 --nats-listen 127.0.0.1:14223 --data-dir "$dir" --delivery "$mode" \
		--max-conns-per-user 0 --ingress-rate 0 --log-level error >"$dir/log" 2>&1 &
	pid=$!
	trap 'kill $pid 2>/dev/null' EXIT
	for _ in $(seq 50); do curl -sf http://127.0.0.1:18091/readyz >/dev/null && break; sleep 0.1; done
	b=("$bin/eventsctl" bench --server http://127.0.0.1:18091 --nats-url nats://127.0.0.1:14223 --data-dir "$dir" --timeout 90s)
	echo "### --delivery $mode"
	"${b[@]}" --scenario fanout --conns 1000 --events 1000
	"${b[@]}" --scenario fanout --conns 1000 --events 500 --rate 50
	"${b[@]}" --scenario users --conns 1000 --events 20000
	for w in 16 64 256; do "${b[@]}" --scenario users --conns 1000 --events 20000 --window "$w" | tail -n 1; done
	"${b[@]}" --scenario fanout --conns 1000 --events 1000 --via http | tail -n 1
	"${b[@]}" --scenario users --conns 1000 --events 20000 --via http | tail -n 1
	"${b[@]}" --scenario users --conns 10000 --events 20000 --rate 2000
	"${b[@]}" --scenario replay --events 100000
	"${b[@]}" --scenario context --events 2000 --rate 200
	"${b[@]}" --scenario idle,churn --conns 10000
	kill $pid
	wait $pid 2>/dev/null || true
	rm -rf "$dir"
done
