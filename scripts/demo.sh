#!/usr/bin/env bash
# scripts/demo.sh [--quick]
#
# Installs missing build tools (scripts/deps.sh), builds mproc into build/
# (the default build type of CMakeLists.txt), and runs the demo:
#   1. `mproc bench` (about 15-20 s): CPU-bound and I/O-bound tasks on
#      thread executors, speed-ups and Amdahl's law, measured on this
#      machine; with --quick, `mproc bench --quick` (under 3 s);
#   2. the examples in examples/ that exist in build/examples/ -- threads
#      first, then locks and race conditions, as the lecture notes order
#      them.
# Each part is introduced by a header line. To change the demo, edit
# run_demo below.
set -euo pipefail

bench_args=()
case ${1:-} in
    "") ;;
    --quick) bench_args=(--quick) ;;
    *)
        echo "usage: scripts/demo.sh [--quick]" >&2
        exit 2
        ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=$root/build
jobs=$(nproc 2>/dev/null || echo 2)

bash "$root/scripts/deps.sh"

echo "== demo: configure and build $build"
cmake -S "$root" -B "$build" -DMPROC_ASAN=OFF -DMPROC_TSAN=OFF >/dev/null
cmake --build "$build" -j "$jobs"

# Examples in the order the notes teach them; any other example found in
# build/examples/ runs after these.
examples=(
    hilos_trabajador  # threads doing work
    hilo_daemon       # daemon threads
    hilos_enumerar    # listing live threads
    evento_parada     # an Event as a stop flag
    lock_print        # a lock around printing
    lock_valor        # a lock around a shared value
    condicion_carrera # a race condition, and its fix
)

failed=()

# header TEXT: the line that introduces one part of the demo.
header() {
    echo
    echo "=============================================================="
    echo "== $1"
    echo "=============================================================="
}

# run_part NAME COMMAND...: run one part with a time limit; remember a
# failure and go on.
run_part() {
    local name=$1 rc=0
    shift
    timeout 120 "$@" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "== $name: FAILED (exit status $rc)"
        failed+=("$name")
    fi
}

# run_bench: the `mproc` command's benchmark of the notes' core lesson.
run_bench() {
    header "mproc bench ${bench_args[*]}   (src/tools/bench.c)"
    run_part "mproc bench" "$build/mproc" bench "${bench_args[@]}"
}

# run_example NAME: run build/examples/NAME with a header line.
run_example() {
    header "$1   (examples/$1.c)"
    run_part "$1" "$build/examples/$1"
}

run_demo() {
    local name exe ran=0
    run_bench
    for name in "${examples[@]}"; do
        if [ -x "$build/examples/$name" ]; then
            run_example "$name"
            ran=$((ran + 1))
        fi
    done
    for exe in "$build"/examples/*; do
        name=$(basename "$exe")
        if [ ! -f "$exe" ] || [ ! -x "$exe" ]; then continue; fi
        case " ${examples[*]} " in *" $name "*) continue ;; esac
        run_example "$name"
        ran=$((ran + 1))
    done
    if [ "$ran" -eq 0 ]; then
        echo "demo: no example programs in $build/examples/ yet" >&2
        return 1
    fi
}

run_demo
echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "demo: failed: ${failed[*]}" >&2
    exit 1
fi
echo "demo: done"
