#!/bin/bash
# The image's health check: GET /healthz of the monitoring port (NATS_MONITOR_PORT, 8222) must
# answer 200 (the server runs and JetStream is current). The image has no HTTP client: bash's
# /dev/tcp speaks the one request. Used by Docker's HEALTHCHECK (compose BUS=nats) and by the
# podman smoke test's liveness check; Kubernetes probes the same URL with httpGet.
set -eu
port=${NATS_MONITOR_PORT:-8222}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /healthz%s HTTP/1.0\r\nHost: localhost\r\n\r\n' "${1:-}" >&3
read -r -t 5 _ status _ <&3
[ "$status" = 200 ]
