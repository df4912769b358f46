#!/usr/bin/env bash
# End to end, before/after in the same minutes: benchmarks/e2e.py run alternately from a checkout of
# REV ("before") and from this working tree ("after"), RUNS times each. On a machine whose speed
# moves from one minute to the next, only a side-by-side run says what a change did.
#
#   bash benchmarks/e2e_ab.sh REV [RUNS] [e2e.py options...]
#   bash benchmarks/e2e_ab.sh 743c432 3 --backends sqlite,postgres --only noop,fanout --systems trioworks
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rev="${1:?usage: e2e_ab.sh REV [RUNS] [e2e.py options...]}"
runs="${2:-3}"
shift $(( $# >= 2 ? 2 : 1 ))
python="$here/.venv/bin/python"
before="$(mktemp -d)/before"
git -C "$here" worktree add --quiet --detach "$before" "$rev"
trap 'git -C "$here" worktree remove --force "$before"' EXIT
for i in $(seq "$runs"); do
    for side in before after; do
        dir="$here"; [ "$side" = before ] && dir="$before"
        echo "== $side, run $i ($(date +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
        (cd "$dir" && PYTHONPATH="$dir/src:$dir/benchmarks" "$python" benchmarks/e2e.py "$@" | grep '^| [a-z]')
    done
done
