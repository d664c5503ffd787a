#!/usr/bin/env bash
# accord's services as separate processes on loopback, as separate machines would run them:
# a Prefect server on PostgreSQL, a Dask scheduler with two workers, and an S3 endpoint (moto).
#
#   infra/local-cluster.sh start [DIR]     # starts everything, writes DIR/env (default .local-cluster)
#   source DIR/env                          # PREFECT_API_URL, ACCORD_DASK_ADDRESS, ACCORD_STORE, AWS_*
#   accord train --dask-address "$ACCORD_DASK_ADDRESS" --store "$ACCORD_STORE" --name demo
#   infra/local-cluster.sh stop [DIR]
#
# PostgreSQL: the server at $PGHOST:$PGPORT (default 127.0.0.1:5432, user postgres) is used and
# started with Debian's pg_ctlcluster if it is not running; each start creates a fresh database.
set -euo pipefail

cmd=${1:-start}
dir=$(mkdir -p "${2:-.local-cluster}" && cd "${2:-.local-cluster}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${ACCORD_BIN:-$here/.venv/bin}
pg_host=${PGHOST:-127.0.0.1}
pg_port=${PGPORT:-5432}
pg_user=${PGUSER:-postgres}

free_port() { "$bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # wait_for NAME COMMAND...: retry COMMAND for up to 90 s
    local name=$1; shift
    for _ in $(seq 1 180); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    echo "local-cluster: $name did not come up; see $dir/*.log" >&2
    return 1
}

launch() {  # launch NAME COMMAND...: start in its own session, remember the pid
    local name=$1; shift
    setsid "$@" >"$dir/$name.log" 2>&1 < /dev/null &
    echo $! >"$dir/$name.pid"
}

start() {
    if ! pg_isready -q -h "$pg_host" -p "$pg_port"; then
        echo "local-cluster: starting PostgreSQL" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
        wait_for postgres pg_isready -q -h "$pg_host" -p "$pg_port"
    fi
    local db="accord_$(date +%s)_$$"
    createdb -h "$pg_host" -p "$pg_port" -U "$pg_user" "$db"

    local prefect_port dask_port s3_port
    prefect_port=$(free_port); dask_port=$(free_port); s3_port=$(free_port)
    local api="http://127.0.0.1:$prefect_port/api"

    PREFECT_HOME="$dir/prefect-home" \
    PREFECT_SERVER_DATABASE_CONNECTION_URL="postgresql+asyncpg://$pg_user@$pg_host:$pg_port/$db" \
    PREFECT_SERVER_UI_API_URL="$api" PREFECT_SERVER_ANALYTICS_ENABLED=false \
        launch prefect-server "$bin/prefect" server start --host 127.0.0.1 --port "$prefect_port"

    launch dask-scheduler "$bin/dask" scheduler --host 127.0.0.1 --port "$dask_port" --dashboard-address :0
    for i in 1 2; do
        PREFECT_API_URL="$api" OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 ACCORD_THREADS_PER_TASK=1 TF_CPP_MIN_LOG_LEVEL=2 \
        AWS_ENDPOINT_URL="http://127.0.0.1:$s3_port" AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local-secret \
        AWS_DEFAULT_REGION=us-east-1 \
            launch "dask-worker-$i" "$bin/dask" worker "tcp://127.0.0.1:$dask_port" \
                --name "worker-$i" --nthreads 1 --no-dashboard --host 127.0.0.1 --preload runtime.preload
    done

    launch s3 "$bin/moto_server" -H 127.0.0.1 -p "$s3_port"

    wait_for prefect-server curl -fsS "$api/health"
    wait_for s3 curl -fsS -X PUT "http://127.0.0.1:$s3_port/accord"
    wait_for dask-workers "$bin/python" -c "
from distributed import Client
with Client('tcp://127.0.0.1:$dask_port', timeout=5) as c:
    assert len(c.scheduler_info()['workers']) == 2"

    cat >"$dir/env" <<ENV
export PREFECT_API_URL=$api
export ACCORD_DASK_ADDRESS=tcp://127.0.0.1:$dask_port
export ACCORD_STORE=s3://accord/registry
export AWS_ENDPOINT_URL=http://127.0.0.1:$s3_port
export AWS_ACCESS_KEY_ID=local
export AWS_SECRET_ACCESS_KEY=local-secret
export AWS_DEFAULT_REGION=us-east-1
export ACCORD_LOCAL_CLUSTER_DATABASE=postgresql://$pg_user@$pg_host:$pg_port/$db
ENV
    echo "local-cluster: up; source $dir/env" >&2
}

stop() {
    for pidfile in "$dir"/*.pid; do
        [ -e "$pidfile" ] || continue
        kill -TERM -- "-$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 2
    for pidfile in "$dir"/*.pid; do
        [ -e "$pidfile" ] || continue
        kill -KILL -- "-$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    if [ -e "$dir/env" ]; then
        db=$(sed -n 's|^export ACCORD_LOCAL_CLUSTER_DATABASE=.*/||p' "$dir/env")
        [ -n "$db" ] && dropdb --if-exists -h "$pg_host" -p "$pg_port" -U "$pg_user" "$db" 2>/dev/null || true
        rm -f "$dir/env"
    fi
    echo "local-cluster: stopped" >&2
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
