#!/usr/bin/env bash
# Installs moto server (PyPI moto[server]) if needed and starts it on a free loopback port: the
# second S3 implementation of the test matrix, one that accepts a stale If-Match on
# CompleteMultipartUpload. Prints `export` lines; the server runs until $PQM_MOTO_PID is killed.
#
#   eval "$(scripts/moto.sh start)"   # starts, exports PQM_MOTO_ENDPOINT
#   scripts/moto.sh stop               # stops the server started from this shell
set -euo pipefail
# shellcheck source=scripts/stop_server.sh
. "$(dirname "$0")/stop_server.sh"

start() {
  local port log pid i
  if ! command -v moto_server >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check 'moto[server]' >&2
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
  log=$(mktemp "${TMPDIR:-/tmp}/pqmigrate-moto.XXXXXX")
  moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  pid=$!
  for i in $(seq 1 120); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/moto-api/" 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "moto_server exited; log follows" >&2; cat "$log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "export PQM_MOTO_ENDPOINT=http://127.0.0.1:$port"
  echo "export PQM_MOTO_PID=$pid"
}

stop() {
  stop_server "${PQM_MOTO_PID:-}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
