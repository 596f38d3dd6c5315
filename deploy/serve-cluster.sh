#!/usr/bin/env bash
# Two `python -m serve` instances behind haproxy, all on 127.0.0.1 (README "Production"):
# the command lines tests/test_stack.py runs. Extra arguments are Hydra overrides for both
# instances, e.g. `deploy/serve-cluster.sh registry=server`.
#
#   balancer  127.0.0.1:$GOVPIPE_LB_PORT (8000)   instances :$GOVPIPE_S1_PORT (8001), :$GOVPIPE_S2_PORT (8002)
#
# Each instance runs in a restart loop and writes its pid to $RUN_DIR/s1.pid / s2.pid, so a
# rolling restart is: `kill -TERM $(cat .stack/cluster/s1.pid)`, wait until
# `curl -s 127.0.0.1:8001/health` says ok, then the same for s2. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOVPIPE_LB_PORT=${GOVPIPE_LB_PORT:-8000} GOVPIPE_S1_PORT=${GOVPIPE_S1_PORT:-8001} \
  GOVPIPE_S2_PORT=${GOVPIPE_S2_PORT:-8002}
RUN_DIR=${RUN_DIR:-.stack/cluster}
mkdir -p "$RUN_DIR"
command -v haproxy >/dev/null || { echo "error: haproxy is not installed (apt-get install haproxy)" >&2; exit 2; }

instance() {  # name port overrides...: restart after every exit (SIGTERM drains, exit 0)
  local name=$1 port=$2; shift 2
  while [ ! -e "$RUN_DIR/stopping" ]; do
    python -m serve "serve.port=$port" "serve.audit.dir=audit/$name" "$@" &
    echo $! > "$RUN_DIR/$name.pid"
    wait $! || true
    sleep 1
  done
}

rm -f "$RUN_DIR/stopping"
pids=()
stop() {
  touch "$RUN_DIR/stopping"
  for f in "$RUN_DIR"/s1.pid "$RUN_DIR"/s2.pid; do
    [ -e "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null || true
  done
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait
  rm -f "$RUN_DIR"/*.pid "$RUN_DIR/stopping"
}
trap stop EXIT
trap 'exit 0' INT TERM
instance s1 "$GOVPIPE_S1_PORT" "$@" & pids+=($!)
instance s2 "$GOVPIPE_S2_PORT" "$@" & pids+=($!)
haproxy -db -f deploy/haproxy.cfg & pids+=($!)
echo "serve-cluster: http://127.0.0.1:$GOVPIPE_LB_PORT -> :$GOVPIPE_S1_PORT, :$GOVPIPE_S2_PORT (Ctrl-C stops)"
wait -n "${pids[@]}"
