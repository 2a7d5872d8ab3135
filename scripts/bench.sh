#!/usr/bin/env bash
# Build mproc in Release into build-bench/ and run the sync benchmarks.
#
#   bash scripts/bench.sh            full run (about half a minute)
#   bash scripts/bench.sh --quick    small counts, for CI (well under 20 s)
#
# Arguments are passed to bench_sync: --quick, --json, --strict, --runs N,
# --verbose, --case N[,N...] (see --help). Figures are noisy on a busy
# machine: the header shows the load average.
# Python's multiprocessing is one of the things compared: python3 is
# installed with apt-get when it is missing and we are root; otherwise that
# comparison is skipped.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-bench"

if ! command -v python3 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench.sh: installing python3" >&2
    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3) >&2 ||
      echo "bench.sh: could not install python3; going on without it" >&2
  else
    echo "bench.sh: python3 not found; the Python comparison is skipped" >&2
  fi
fi

# Only errors of the build are shown (on stderr): stdout is the benchmark's
# (a JSON document with --json).
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target bench_sync -j "$(nproc)" >/dev/null

exec "$build/bench/bench_sync" "$@"
