// Package bridge is the daemon: MQTT in, rules, a durable outbox, signed
// webhooks out, signed webhooks in, and the HTTP server. New builds a Bridge
// from a loaded configuration; Run does everything until its context ends.
//
// Where to look:
//
//   - config.go, load.go, decode.go, position.go, validate.go: the strict
//     config loader; every problem is reported as file:line: key: problem.
//   - bridge.go: Run, start-up (restore from the store) and shutdown order.
//   - ingest.go: the only goroutine that owns the rules engine. It commits
//     events with their MQTT redelivery marks (group commit) before acking.
//   - deliver.go, retire.go: one deliverer per endpoint (series in order,
//     retries, 410 disables); delivered and dead jobs leave the outbox by
//     riding on ingest's commits.
//   - inbound.go, ratelimit.go, replay.go: signed webhooks → MQTT publishes,
//     the checks of PRODUCT.md §5 in order.
//   - reload.go: SIGHUP and [rules] watch, applied atomically.
//   - http.go: /healthz, /readyz, /metrics, and the routes below.
//   - admin.go, status.go, statuspage.go, view.go, web/status.html: the status
//     page GET / and /api/v1 (status, dead letters: list, retry, delete), with
//     their access rules (loopback or the admin token).
//   - metrics.go: the edgehook_ metrics (labels from config names only).
//
// Subpackages hold one library each: queue (bbolt), mqtt (paho), webhook
// (signing and the HTTP client), broker (the embedded mochi broker),
// sdnotify (systemd); mosquittotest is the test harness around a real
// mosquitto.
package bridge
