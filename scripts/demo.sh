#!/usr/bin/env bash
# scripts/demo.sh
#
# Installs missing build tools (scripts/deps.sh), builds mproc into build/
# (the default build type of CMakeLists.txt), and runs the demo.
#
# For now the demo is the examples in examples/ that exist in build/examples/
# -- threads first, then locks and race conditions, as the lecture notes
# order them -- each introduced by a header line. To change the demo (e.g.
# to `mproc bench` once the command exists), edit run_demo below.
set -euo pipefail

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

# run_example NAME: run build/examples/NAME with a header line and a time
# limit; remember a failure and go on.
run_example() {
    local name=$1 exe=$build/examples/$1 rc=0
    echo
    echo "=============================================================="
    echo "== $name   (examples/$name.c)"
    echo "=============================================================="
    timeout 120 "$exe" || rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "== $name: FAILED (exit status $rc)"
        failed+=("$name")
    fi
}

run_demo() {
    local name exe ran=0
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
