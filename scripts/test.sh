#!/usr/bin/env bash
# scripts/test.sh [plain|asan|tsan]
#
# Installs missing build tools (scripts/deps.sh), configures, builds and
# runs every test with ctest, each test in its own process.
#
#   scripts/test.sh        plain build in build/, all tests including
#                          install.consumer, then `scripts/bench.sh --quick`
#                          (when it exists) so the benchmarks never rot
#   scripts/test.sh asan   build-asan/, AddressSanitizer + UBSan
#   scripts/test.sh tsan   build-tsan/, ThreadSanitizer; suppressions, if
#                          any, are in tests/tsan.supp (one commented file)
#
# The mode may also come from the environment: MPROC_SANITIZE=asan|tsan.
# Sanitizer modes skip install.consumer (it builds its own plain copy, which
# the plain mode already checks) and set MPROC_TEST_SCALE=4, which the tests
# use to do a quarter of their iterations.
# Extra arguments after the mode go to ctest, e.g.
#   scripts/test.sh plain -R sync       scripts/test.sh tsan -L ipc
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=${1:-${MPROC_SANITIZE:-plain}}
[ $# -gt 0 ] && shift
jobs=$(nproc 2>/dev/null || echo 2)
ctest_args=(--output-on-failure -j2)
runner=()

# probe asan|tsan [PREFIX...]: can a trivial program built with that
# sanitizer run here (run as PREFIX... ./program)?
probe() {
    local flag dir rc=0
    case $1 in asan) flag=address ;; tsan) flag=thread ;; esac
    shift
    dir=$(mktemp -d)
    printf 'int main(void) { return 0; }\n' >"$dir/p.c"
    if "${CC:-cc}" -fsanitize="$flag" -o "$dir/p" "$dir/p.c" 2>/dev/null; then
        env "$@" "$dir/p" >/dev/null 2>&1 || rc=1
    fi
    rm -rf "$dir"
    return $rc
}

bash "$root/scripts/deps.sh"

case $mode in
    plain | "")
        mode=plain
        dir=build
        options=(-DMPROC_ASAN=OFF -DMPROC_TSAN=OFF)
        ;;
    asan)
        dir=build-asan
        options=(-DMPROC_ASAN=ON -DMPROC_TSAN=OFF)
        ctest_args+=(-E '^install\.')
        export MPROC_TEST_SCALE=4
        # LeakSanitizer needs to stop the world with ptrace; it cannot when
        # the tests themselves run under a tracer (some CI sandboxes). Probe
        # once and turn leak detection off, loudly, only where it fails.
        leaks=1
        if ! probe asan ASAN_OPTIONS=detect_leaks=1; then
            leaks=0
            echo "test: LeakSanitizer does not work here; running ASan with detect_leaks=0"
        fi
        export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=$leaks"
        export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
        ;;
    tsan)
        dir=build-tsan
        options=(-DMPROC_ASAN=OFF -DMPROC_TSAN=ON)
        ctest_args+=(-E '^install\.')
        export MPROC_TEST_SCALE=4
        TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
        if [ -f "$root/tests/tsan.supp" ]; then
            TSAN_OPTIONS+=" suppressions=$root/tests/tsan.supp"
        fi
        export TSAN_OPTIONS
        # GCC 12's TSan runtime cannot start when the kernel randomises
        # mmap with more bits than it expects ("unexpected memory
        # mapping"); run without ASLR there.
        if probe tsan; then
            :
        elif probe tsan setarch "$(uname -m)" -R; then
            echo "test: TSan needs ASLR off here; running ctest under setarch -R"
            runner=(setarch "$(uname -m)" -R)
        else
            echo "test: ThreadSanitizer cannot run a trivial program here" >&2
            exit 1
        fi
        ;;
    *)
        echo "usage: scripts/test.sh [plain|asan|tsan] [ctest arguments...]" >&2
        exit 2
        ;;
esac
ctest_args+=("$@")

echo "== test ($mode): configure $dir/"
cmake -S "$root" -B "$root/$dir" -DMPROC_BUILD_TESTS=ON "${options[@]}"
echo "== test ($mode): build"
cmake --build "$root/$dir" -j "$jobs"
echo "== test ($mode): ctest ${ctest_args[*]}"
(cd "$root/$dir" && "${runner[@]}" ctest "${ctest_args[@]}")

if [ "$mode" = plain ] && [ $# -eq 0 ] && [ -f "$root/scripts/bench.sh" ]; then
    echo "== test ($mode): bash scripts/bench.sh --quick"
    bash "$root/scripts/bench.sh" --quick
fi
echo "== test ($mode): all passed"
