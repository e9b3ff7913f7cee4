#!/usr/bin/env bash
# The standard benchmark: Riak's reference workload (3 nodes, n_val 3, r/w quorum, 1 KiB
# values over 10k preloaded keys, blind PUTs with allow_mult false, wrk with 2 threads and
# 8 connections, 15 s runs), 1 and 3 nodes, next to the aiohttp constant handler measured
# in the same run, with the ratios. Usage: benchmarks/run_standard.sh [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  host: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
exec "$PY" benchmarks/http_bench.py --nodes 1 3 --keys 10000 --value-bytes 1024 \
  --duration 15 --connections 8 --threads 2 "$@"
