#!/usr/bin/env bash
# Run the test suite while every core is kept busy by other processes: the suite's verdicts must
# not depend on the machine's speed or load (issue 9). `make test-under-load` runs this.
#
#   scripts/stress-test.sh                       the whole suite: pytest -q -n auto --durations=10
#   scripts/stress-test.sh -x tests/services     other pytest arguments instead
#
# The load: `stress-ng --cpu N` (Debian's stress-ng; installed with apt-get when missing and
# that is possible: root or passwordless sudo), else N busy Python loops. N is the number of
# cores (nproc) unless STRESS_WORKERS says otherwise. The load is stopped when the tests end,
# fail or are interrupted; the Python loops also end by themselves if this script is killed.
#
# Environment: PYTHON (default .venv/bin/python), STRESS_WORKERS, STRESS_WITH=python to skip
# stress-ng.
set -uo pipefail

cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
workers=${STRESS_WORKERS:-$(nproc 2>/dev/null || echo 2)}
say() { printf 'stress-test: %s\n' "$*" >&2; }

if [ ! -x "$python" ]; then
    say "$python not found: run 'make test' (or create .venv) first"
    exit 2
fi

install_stress_ng() {
    command -v apt-get >/dev/null 2>&1 || return 1
    local sudo_cmd=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
        sudo_cmd=(sudo -n)
    fi
    say "installing stress-ng (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends stress-ng >/dev/null 2>&1 && return 0
    "${sudo_cmd[@]}" apt-get update -qq >/dev/null 2>&1 || return 1
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends stress-ng >/dev/null 2>&1
}

load_pids=()
stop_load() {
    local pid
    for pid in "${load_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${load_pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    load_pids=()
}
trap stop_load EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "${STRESS_WITH:-}" != python ] && { command -v stress-ng >/dev/null 2>&1 || install_stress_ng; }; then
    # --timeout: a safety net should this script die without running its trap.
    stress-ng --cpu "$workers" --timeout 2h --quiet &
    load_pids+=($!)
    say "load: stress-ng --cpu $workers (pid $!)"
else
    for _ in $(seq "$workers"); do
        # A busy loop that checks now and then whether this script still runs. "$python" is the
        # interpreter itself: a wrapper (a pyenv shim, say) could leave the loop as its child,
        # out of reach of the kill below.
        "$python" -c '
import os, sys
parent = int(sys.argv[1])
while True:
    for _ in range(1_000_000):
        pass
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
' "$$" &
        load_pids+=($!)
    done
    say "load: $workers busy Python loops (pids ${load_pids[*]})"
fi

args=("$@")
[ ${#args[@]} -eq 0 ] && args=(-q -n auto --durations=10)
started=$(date +%s)
"$python" -m pytest "${args[@]}"
status=$?
say "pytest exited $status after $(($(date +%s) - started)) s under load"
exit $status
