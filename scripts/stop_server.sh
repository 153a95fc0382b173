# Sourced by the server scripts: `stop_server PID` stops a server this shell did not start
# (so `wait` cannot be used) and returns once it is gone, forcing it after 10 s, so its folder
# is never removed under a running server.
stop_server() {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 1 25); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
}
