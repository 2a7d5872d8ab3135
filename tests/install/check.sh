#!/usr/bin/env bash
# tests/install/check.sh SRC_DIR WORK_DIR
#
# Proves that an installed mproc works for a consumer, as ctest case
# install.consumer:
#   1. configure mproc from SRC_DIR into WORK_DIR/build (plain build, no
#      tests/examples/bench), build it and install it into WORK_DIR/prefix;
#   2. check the installed tree: exactly the public headers (no internal
#      header from src/), both libraries, the pkg-config file and the CMake
#      package; every public function is exported by libmproc.so and
#      nothing else is;
#   3. compile every installed header alone with -std=c11 -Wall -Wextra
#      -Werror -pedantic (and as C++ when a C++ compiler is present);
#   4. build tests/install/consumer/main.c (the example in README.md) with
#      pkg-config, shared and static, and with find_package(mproc) in
#      tests/install/consumer/CMakeLists.txt, shared and static; run each
#      and check what it prints and which libmproc it loaded.
# Any problem stops the script with "install check: FAIL: ..." and exit 1.
#
# The build is always plain: sanitizer settings of the calling build
# (MPROC_ASAN/MPROC_TSAN, MPROC_SANITIZE) are not propagated.
set -euo pipefail

die() { echo "install check: FAIL: $*" >&2; exit 1; }
step() { echo "== install check: $*"; }
trap 'die "command failed (line $LINENO): $BASH_COMMAND"' ERR

[ $# -eq 2 ] || die "usage: $0 SRC_DIR WORK_DIR"
[ -f "$1/CMakeLists.txt" ] || die "$1 is not an mproc source tree (no CMakeLists.txt)"
src=$(cd "$1" && pwd)
mkdir -p "$2"
work=$(cd "$2" && pwd)
build=$work/build
prefix=$work/prefix
cc=${CC:-cc}
jobs=2
expected="counter = 400000 (expected 400000)"
consumer_src=$src/tests/install/consumer

# The consumer programs must not pick up a sanitizer runtime's options or a
# stray libmproc from the caller's environment.
unset ASAN_OPTIONS UBSAN_OPTIONS TSAN_OPTIONS LSAN_OPTIONS MPROC_SANITIZE
unset LD_LIBRARY_PATH

# --- 1. configure, build, install ------------------------------------------
# The build directory is reused (incremental, fast); the prefix and the
# consumers are rebuilt from scratch every time so stale files cannot hide
# a problem.
rm -rf "$prefix" "$work"/consumer-*
step "configure $src -> $build"
cmake -S "$src" -B "$build" \
    -DMPROC_BUILD_TESTS=OFF -DMPROC_BUILD_EXAMPLES=OFF -DMPROC_BUILD_BENCH=OFF \
    -DMPROC_ASAN=OFF -DMPROC_TSAN=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_INSTALL_PREFIX="$prefix" >"$work/configure.log" 2>&1 \
    || { cat "$work/configure.log" >&2; die "configuring mproc failed"; }
step "build"
cmake --build "$build" -j "$jobs" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; die "building mproc failed"; }
step "install -> $prefix"
cmake --install "$build" >"$work/install.log" 2>&1 \
    || { cat "$work/install.log" >&2; die "installing mproc failed"; }

# --- 2. the installed tree -------------------------------------------------
pc=$(find "$prefix" -path '*/pkgconfig/mproc.pc' | head -n 1)
[ -n "$pc" ] || die "no pkgconfig/mproc.pc under $prefix"
libdir=$(dirname "$(dirname "$pc")")
step "libdir is $libdir"
for f in libmproc.so libmproc.a cmake/mproc/mprocConfig.cmake \
         cmake/mproc/mprocConfigVersion.cmake cmake/mproc/mprocTargets.cmake; do
    [ -e "$libdir/$f" ] || die "not installed: $libdir/$f"
done
ls "$libdir"/libmproc.so.* >/dev/null 2>&1 || die "no versioned libmproc.so.N in $libdir"

[ -x "$prefix/bin/mproc" ] || die "not installed: $prefix/bin/mproc"
[ -f "$prefix/share/man/man1/mproc.1" ] || die "not installed: $prefix/share/man/man1/mproc.1"

[ -d "$prefix/include" ] || die "no include/ under $prefix"
installed_headers=$(cd "$prefix/include" && find . -type f | sort)
public_headers=$(cd "$src/include" && find . -type f | sort)
if [ "$installed_headers" != "$public_headers" ]; then
    diff <(echo "$public_headers") <(echo "$installed_headers") >&2 || true
    die "installed headers differ from include/ (< source, > installed)"
fi
if [ -d "$src/src" ]; then
    while IFS= read -r h; do
        leaked=$(find "$prefix" -name "$h" | head -n 1)
        [ -z "$leaked" ] || die "internal header installed: $leaked (from src/)"
    done < <(find "$src/src" -name '*.h' -printf '%f\n' | sort -u)
fi
step "headers: $(echo "$installed_headers" | wc -l) public, no internal ones"

# Every function declared MPROC_API in the headers is exported by the shared
# library, and the library exports nothing outside the mproc_ namespace (and
# no mproc__ internals). The test suites link the static library, so this is
# where a public function missing MPROC_API would show up.
if command -v nm >/dev/null 2>&1; then
    so=$(readlink -f "$libdir/libmproc.so")
    exported=$(nm -D --defined-only --extern-only "$so" | awk 'NF >= 3 { print $3 }' | sort -u)
    # A function prototype starts in column 0 (not #, not typedef, not a
    # static inline helper, which no library exports) and its name is the
    # last mproc_ identifier before the first '('.
    protos=$(grep -rhE '^[A-Za-z_]' "$prefix/include" | grep -vE '^(typedef|static)[^A-Za-z0-9_]' \
             | grep -E '^[^#(]*[^A-Za-z0-9_]mproc_[A-Za-z0-9_]+[[:space:]]*\(' || true)
    declared=$(echo "$protos" | sed -nE 's/^[^#(]*[^A-Za-z0-9_](mproc_[A-Za-z0-9_]+)[[:space:]]*\(.*/\1/p' | sort -u)
    [ -n "$declared" ] || die "found no function declarations in the installed headers"
    no_api=$(echo "$protos" | grep -v 'MPROC_API' || true)
    [ -z "$no_api" ] || die "public functions declared without MPROC_API (hidden in libmproc.so):
$no_api"
    missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
    [ -z "$missing" ] || die "declared in the headers but not exported by $so:
$missing"
    foreign=$(echo "$exported" | grep -vE '^mproc_' | grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' || true)
    internal=$(echo "$exported" | grep -E '^mproc__' || true)
    [ -z "$foreign$internal" ] || die "libmproc.so exports symbols outside the public API:
$foreign$internal"
    step "symbols: $(echo "$declared" | wc -l) public functions exported, nothing else"
else
    step "symbols: nm not found, export check skipped"
fi

# --- 3. headers compile alone, strictly ---------------------------------------
strict=(-std=c11 -Wall -Wextra -Werror -pedantic -Wstrict-prototypes)
hdrdir=$work/consumer-headers
mkdir -p "$hdrdir"
while IFS= read -r h; do
    h=${h#./}
    tu=$hdrdir/$(echo "$h" | tr '/.' '__').c
    # Included twice: the include guard must work too.
    printf '#include <%s>\n#include <%s>\nint main(void) { return 0; }\n' "$h" "$h" >"$tu"
    "$cc" "${strict[@]}" -I"$prefix/include" -fsyntax-only "$tu" \
        || die "installed header <$h> does not compile alone with ${strict[*]}"
    if command -v c++ >/dev/null 2>&1; then
        cp "$tu" "${tu%.c}.cpp"
        c++ -std=c++11 -Wall -Wextra -Werror -pedantic -I"$prefix/include" \
            -fsyntax-only "${tu%.c}.cpp" \
            || die "installed header <$h> does not compile as C++11"
    fi
done <<<"$installed_headers"
step "every header compiles alone with ${strict[*]}$(command -v c++ >/dev/null 2>&1 && echo ' (and as C++11)')"

# The README's example is the consumer's source, so the README cannot show
# code that does not build.
if [ -f "$src/README.md" ]; then
    readme_example=$(awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on' "$src/README.md")
    if [ "$readme_example" != "$(cat "$consumer_src/main.c")" ]; then
        diff <(echo "$readme_example") "$consumer_src/main.c" >&2 || true
        die "README.md's first \`\`\`c block differs from tests/install/consumer/main.c (< README)"
    fi
fi

# run_consumer NAME EXE [LIBMPROC_EXPECTED]
# Runs EXE, checks its output, and checks which libmproc it loads: one from
# $libdir when LIBMPROC_EXPECTED is "shared", none when it is "static".
run_consumer() {
    local name=$1 exe=$2 kind=$3 out loaded
    out=$(timeout 60 "$exe" 2>&1) || die "$name: $exe exited with status $?; output:
$out"
    [ "$out" = "$expected" ] || die "$name: unexpected output:
$out
(expected: $expected)"
    loaded=$(ldd "$exe" | grep libmproc || true)
    if [ "$kind" = shared ]; then
        case $loaded in
            *"=> $libdir/libmproc.so"*) ;;
            *) die "$name: does not load libmproc from $libdir: ${loaded:-no libmproc in ldd output}" ;;
        esac
    else
        [ -z "$loaded" ] || die "$name: static consumer still needs a shared libmproc: $loaded"
    fi
    step "$name: ok ($out)"
}

# --- 4a. consumer with pkg-config --------------------------------------------
command -v pkg-config >/dev/null 2>&1 || die "pkg-config not found (run scripts/deps.sh)"
export PKG_CONFIG_PATH=$libdir/pkgconfig
pkg-config --exists mproc || die "pkg-config cannot find mproc in $PKG_CONFIG_PATH"
want_version=$(sed -nE 's/^project\(mproc VERSION ([0-9.]+).*/\1/p' "$src/CMakeLists.txt")
have_version=$(pkg-config --modversion mproc)
[ -z "$want_version" ] || [ "$have_version" = "$want_version" ] \
    || die "pkg-config says version $have_version, CMakeLists.txt says $want_version"
pcdir=$work/consumer-pkgconfig
mkdir -p "$pcdir"

cflags=$(pkg-config --cflags mproc)
libs=$(pkg-config --libs mproc)
# shellcheck disable=SC2086 # word splitting of pkg-config output is intended
"$cc" "${strict[@]}" -o "$pcdir/consumer" "$consumer_src/main.c" $cflags $libs \
    || die "pkg-config consumer: cc ... \$(pkg-config --cflags --libs mproc) failed"
LD_LIBRARY_PATH=$libdir run_consumer "pkg-config shared" "$pcdir/consumer" shared

# Static: the flags of `pkg-config --static`, with -lmproc pinned to the
# archive (a plain -lmproc would pick libmproc.so).
static_libs=$(pkg-config --static --libs mproc | sed -E 's/(^|[[:space:]])-lmproc([[:space:]]|$)/\1-l:libmproc.a\2/')
case $static_libs in *-l:libmproc.a*) ;; *) die "pkg-config --static --libs mproc has no -lmproc: $static_libs" ;; esac
# shellcheck disable=SC2086,SC2046 # word splitting of pkg-config output is intended
"$cc" "${strict[@]}" -o "$pcdir/consumer_static" "$consumer_src/main.c" \
    $(pkg-config --static --cflags mproc) $static_libs \
    || die "pkg-config static consumer: link with \$(pkg-config --static --libs mproc) against libmproc.a failed (Libs.private incomplete?)"
run_consumer "pkg-config static" "$pcdir/consumer_static" static

# --- 4b. consumer with find_package(mproc) -----------------------------------
cmdir=$work/consumer-cmake
cmake -S "$consumer_src" -B "$cmdir" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/consumer-configure.log" 2>&1 \
    || { cat "$work/consumer-configure.log" >&2; die "find_package(mproc) consumer: configure failed"; }
found_dir=$(sed -n 's/^mproc_DIR:PATH=//p' "$cmdir/CMakeCache.txt")
case $found_dir in
    "$prefix"/*) ;;
    *) die "find_package(mproc) found $found_dir, not the package under $prefix" ;;
esac
cmake --build "$cmdir" -j "$jobs" >"$work/consumer-build.log" 2>&1 \
    || { cat "$work/consumer-build.log" >&2; die "find_package(mproc) consumer: build failed"; }
# No LD_LIBRARY_PATH: the imported target must be enough to run from the
# build tree (CMake's build RPATH).
run_consumer "find_package mproc::mproc" "$cmdir/consumer" shared
run_consumer "find_package mproc::mproc_static" "$cmdir/consumer_static" static

echo "install check: PASS"
