#!/usr/bin/env bash
# Build mproc in Release into build-bench/ and run the benchmarks: bench_sync
# (the sync layer), bench_exec (the thread executor), bench_proc
# (starting processes), bench_ipc (queues and pipes between processes), then
# bench_pexec (the process executor).
#
#   bash scripts/bench.sh            full run (a few minutes)
#   bash scripts/bench.sh --quick    small counts, for CI (each ~10-20 s)
#
# Arguments are passed to each: --quick, --json, --strict, --runs N,
# --verbose, --case N[,N...] (see --help; case numbers are each program's
# own). With --json stdout gets one JSON document per program, one after
# the other. The exit status is the worst of them. Figures are noisy on a busy
# machine: each header shows the load average.
#
# What mproc is compared with is installed with apt-get (through
# scripts/deps.sh) when it is missing and we are root: python3, GLib
# (libglib2.0-dev), oneTBB (libtbb-dev), ZeroMQ (libzmq3-dev),
# Boost.Interprocess (libboost-dev) and a C++ compiler for the last two and
# oneTBB; OpenMP comes with gcc. Otherwise each missing one's comparisons are skipped.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="$root/build-bench"

extras=(libglib2.0-dev libtbb-dev libzmq3-dev libboost-dev)
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1; then
  extras+=(g++)
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # Quick when everything is there; its messages go to stderr, so that
  # stdout is only the benchmarks' (a JSON document with --json).
  bash "$root/scripts/deps.sh" "${extras[@]}" >&2 ||
    echo "bench.sh: could not install everything; comparisons with what is missing are skipped" >&2
else
  command -v python3 >/dev/null 2>&1 ||
    echo "bench.sh: python3 not found; the Python comparisons are skipped" >&2
  for pkg in "${extras[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] ||
      echo "bench.sh: $pkg may be missing (not root: not installing it); its comparisons may be skipped" >&2
  done
fi

# Only errors of the build are shown (on stderr).
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release \
  -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build" --target bench_sync bench_exec bench_proc bench_ipc bench_pexec -j "$(nproc)" >/dev/null

json=0
for arg in "$@"; do [ "$arg" = --json ] && json=1; done
rc=0
"$build/bench/bench_sync" "$@" || rc=$?
if [ $json = 1 ]; then echo >&2; else echo; fi
rc2=0
"$build/bench/bench_exec" "$@" || rc2=$?
rc=$((rc > rc2 ? rc : rc2))
if [ $json = 1 ]; then echo >&2; else echo; fi
rc2=0
"$build/bench/bench_proc" "$@" || rc2=$?
rc=$((rc > rc2 ? rc : rc2))
if [ $json = 1 ]; then echo >&2; else echo; fi
rc2=0
"$build/bench/bench_ipc" "$@" || rc2=$?
rc=$((rc > rc2 ? rc : rc2))
if [ $json = 1 ]; then echo >&2; else echo; fi
rc2=0
"$build/bench/bench_pexec" "$@" || rc2=$?
exit $((rc > rc2 ? rc : rc2))
