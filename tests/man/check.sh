#!/usr/bin/env bash
# tests/man/check.sh MPROC MANPAGE -- the man page documents the command
# as it is: it formats without warnings (when groff is here), and every
# command, every long option that `mproc help COMMAND` prints and every
# lab that `mproc lab list` names appears in it.
set -euo pipefail
mproc=$1
page=$2
fail=0
miss() { echo "mproc.1: $*" >&2; fail=1; }

if command -v groff >/dev/null; then
    warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1 || true)
    [ -z "$warnings" ] || miss "groff warns: $warnings"
fi

# In the page's source a dash is written \-.
src=$(sed 's/\\-/-/g' "$page")

commands=$("$mproc" --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 } on && /^$/ { exit }')
[ -n "$commands" ] || miss "could not read the commands from mproc --help"
for c in $commands; do
    grep -q "^\.SS \"mproc $c" <<<"$src" || miss "no section for 'mproc $c'"
    for opt in $("$mproc" help "$c" | grep -oE -- '--[a-z][a-z-]*' | sort -u); do
        grep -qF -- "$opt" <<<"$src" || miss "'mproc $c' option $opt is not documented"
    done
done
for lab in $("$mproc" lab list | awk '{ print $1 }'); do
    grep -qE "^\.B $lab\$" <<<"$src" || miss "lab '$lab' is not documented"
done
exit $fail
