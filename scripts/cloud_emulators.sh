#!/usr/bin/env bash
# Installs (once, under target/tools) and starts the emulators of the cloud stores beside S3, each
# on a free loopback port: Azurite (npm `azurite`) for Azure Blob and gcp-storage-emulator (PyPI)
# for Google Cloud Storage. Prints `export` lines; the servers run until stopped.
#
#   eval "$(scripts/cloud_emulators.sh start)"   # exports PQM_AZURE_ENDPOINT, PQM_GCS_ENDPOINT, ...
#   scripts/cloud_emulators.sh stop               # stops the servers started from this shell
set -euo pipefail
# shellcheck source=scripts/stop_server.sh
. "$(dirname "$0")/stop_server.sh"
cd "$(dirname "$0")/.."

# Azurite's well-known development account (documented by Microsoft; not a secret).
ACCOUNT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until `url` answers at all (any HTTP status), or the server `pid` exits.
wait_for() {
  local url=$1 pid=$2 log=$3 i
  for i in $(seq 1 120); do
    if curl -s -o /dev/null "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "emulator exited; log follows" >&2; cat "$log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "emulator at $url did not answer" >&2
  exit 1
}

start() {
  local azurite_port gcs_port data log azurite_pid gcs_pid
  [ -x target/tools/azurite/node_modules/.bin/azurite-blob ] || {
    # Azurite 3.37 asks for Node.js 22 in its manifest and runs on the machine's 20.
    npm install --silent --no-save --no-audit --no-fund --prefix target/tools/azurite azurite@3.37.0 >&2
  }
  [ -x target/tools/gcs/bin/gcp-storage-emulator ] || {
    python3 -m venv target/tools/gcs >&2
    target/tools/gcs/bin/pip install --quiet --disable-pip-version-check gcp-storage-emulator >&2
  }
  data=$(mktemp -d "${TMPDIR:-/tmp}/pqmigrate-azurite.XXXXXX")
  azurite_port=$(free_port)
  log="$data.log"
  # --skipApiVersionCheck: object_store's Azure client sends a newer service version than 3.37 knows.
  node target/tools/azurite/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$azurite_port" \
    --location "$data" --skipApiVersionCheck --silent >"$log" 2>&1 &
  azurite_pid=$!
  wait_for "http://127.0.0.1:$azurite_port/" "$azurite_pid" "$log"

  gcs_port=$(free_port)
  log=$(mktemp "${TMPDIR:-/tmp}/pqmigrate-gcs.XXXXXX")
  target/tools/gcs/bin/gcp-storage-emulator start --host=127.0.0.1 --port="$gcs_port" --in-memory >"$log" 2>&1 &
  gcs_pid=$!
  wait_for "http://127.0.0.1:$gcs_port/storage/v1/b" "$gcs_pid" "$log"

  echo "export PQM_AZURE_ENDPOINT=http://127.0.0.1:$azurite_port/$ACCOUNT"
  echo "export AZURE_STORAGE_ACCOUNT_NAME=$ACCOUNT"
  echo "export AZURE_STORAGE_ACCOUNT_KEY='$KEY'"
  echo "export PQM_AZURITE_PID=$azurite_pid PQM_AZURITE_DIR=$data"
  echo "export PQM_GCS_ENDPOINT=http://127.0.0.1:$gcs_port"
  echo "export PQM_GCS_PID=$gcs_pid"
}

stop() {
  local pid
  for pid in "${PQM_AZURITE_PID:-}" "${PQM_GCS_PID:-}"; do
    stop_server "$pid"
  done
  if [ -n "${PQM_AZURITE_DIR:-}" ]; then rm -rf "$PQM_AZURITE_DIR" "$PQM_AZURITE_DIR.log"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
