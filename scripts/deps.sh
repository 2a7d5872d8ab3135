#!/usr/bin/env bash
# scripts/deps.sh [DEBIAN_PACKAGE...]
#
# Makes sure what building and testing mproc needs is installed: cmake, gcc
# (with its sanitizer runtimes), make, pkg-config, python3, the C library
# headers, and tmux (the tests drive `mproc top` in a real terminal with
# it). Extra Debian package names given as arguments are ensured too (e.g.
# `scripts/deps.sh libglib2.0-dev` from a benchmark script).
#
# When everything is present it only looks and returns (quick, idempotent).
# When something is missing:
#   - as root on Debian/Ubuntu: one `apt-get update`, then one
#     `apt-get install -y --no-install-recommends` of what is missing;
#   - otherwise: prints what to install and exits 1.
set -euo pipefail

# Each need: "check|package". A check is a command name to find on PATH, or
# a file path (starting with /) that must exist.
needs=(
    "cmake|cmake"
    "gcc|gcc"
    "make|make"
    "pkg-config|pkgconf"
    "python3|python3"
    "/usr/include/stdio.h|libc6-dev"
    "tmux|tmux"
)

missing=()
for need in "${needs[@]}"; do
    check=${need%%|*}
    pkg=${need#*|}
    case $check in
        /*) [ -e "$check" ] || missing+=("$pkg") ;;
        *) command -v "$check" >/dev/null 2>&1 || missing+=("$pkg") ;;
    esac
done
for pkg in "$@"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done

[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "deps: install them first, as root on Debian/Ubuntu:" >&2
    echo "      apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    echo "      (or run this script as root to do it)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"

hash -r
# Verify, so a package that did not provide what we look for is reported
# here rather than as a confusing build error later.
for need in "${needs[@]}"; do
    check=${need%%|*}
    case $check in
        /*) [ -e "$check" ] || { echo "deps: $check still missing after install" >&2; exit 1; } ;;
        *) command -v "$check" >/dev/null 2>&1 || { echo "deps: $check still missing after install" >&2; exit 1; } ;;
    esac
done
echo "deps: installed ${missing[*]}"
