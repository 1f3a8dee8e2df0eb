#!/usr/bin/env bash
# Load benchmark on PostgreSQL and Redis: a fresh database with the demo, gunicorn, 100 users for 5 minutes,
# then the workers' peak memory. Usage: [PMO_LOAD_THINK=seconds] bench/load_run.sh [users] [seconds]
# (PMO_LOAD_THINK: mean pause between one user's requests, default 0.5 s; PMO_WORKERS × PMO_THREADS:
# gunicorn, default 5 × 3 as docs/DEPLOYMENT.md recommends for a 2-core machine)
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100}; seconds=${2:-300}; port=${PMO_LOAD_PORT:-5900}
py=${PY:-.venv/bin/python}; pmo=${PMO:-.venv/bin/pmo}
export PMO_INSTANCE_PATH=${PMO_INSTANCE_PATH:-$(mktemp -d)}
export PMO_DATABASE_URL=${PMO_LOAD_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/pmo_load}
# As deployed (docs/DEPLOYMENT.md): Redis shares roll-ups, quotas and metrics between the workers.
# PMO_REDIS_URL= (empty) runs without it: each worker then computes every roll-up itself.
export PMO_REDIS_URL=${PMO_REDIS_URL-redis://127.0.0.1:6379/0}
export PMO_REDIS_PREFIX=${PMO_REDIS_PREFIX:-pmo-load-$$:}
dbname=${PMO_DATABASE_URL##*/}
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $dbname WITH (FORCE)" -c "CREATE DATABASE $dbname"
password=load-test-password-2015
totp=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP  # the demo accounts that need MFA get this authenticator
$pmo db upgrade >/dev/null
$pmo demo --password "$password" --totp-secret "$totp" >/dev/null
$pmo serve --host 127.0.0.1 --port "$port" --workers "${PMO_WORKERS:-5}" --threads "${PMO_THREADS:-3}" >/tmp/pmo-load-server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 1; done
$py bench/load.py --base "http://127.0.0.1:$port" --users "$users" --seconds "$seconds" --think "${PMO_LOAD_THINK:-0.5}" \
  --password "$password" --totp-secret "$totp"
echo "worker memory (RSS MB):"
for pid in $(pgrep -P "$server"); do echo "  pid $pid: $(( $(awk '/VmHWM/ {print $2}' /proc/$pid/status) / 1024 )) peak, $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 )) now"; done
