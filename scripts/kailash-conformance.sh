#!/usr/bin/env bash
# Run the Kailash conformance suite (tests/dag/kailash_conformance) and print pass counts.
#
#   scripts/kailash-conformance.sh            # against Kailash itself (shows the tests are valid)
#   scripts/kailash-conformance.sh trioworks  # against trioworks.dag (strict, then lenient + STATUS tables)
#
# The Kailash run uses its own venv (KAILASH_VENV, default /tmp/kailash-venv), created on first use
# with the `bench` extra's pin (kailash==2.65.0) and what upstream's tests import; no trioworks in it.
# The trioworks run uses the shared .venv with this worktree's src first on the path.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SUITE="$ROOT/tests/dag/kailash_conformance"
TARGET="${1:-kailash}"
OUT="${CONFORMANCE_OUT:-$(mktemp -d)}"

count() {  # count JUNIT_XML: prints "passed/total"
    python3 - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
cases = list(ET.parse(sys.argv[1]).getroot().iter("testcase"))
bad = sum(1 for c in cases if any(ch.tag in ("failure", "error", "skipped") for ch in c))
print(f"{len(cases) - bad}/{len(cases)}")
EOF
}

case "$TARGET" in
kailash)
    VENV="${KAILASH_VENV:-/tmp/kailash-venv}"
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import kailash, pytest_asyncio, pandas, networkx" 2>/dev/null; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q "kailash==2.65.0" pytest pytest-asyncio pytest-timeout hypothesis pandas networkx
    fi
    cd "$SUITE"
    set +e
    CONFORMANCE_TARGET=kailash "$VENV/bin/python" -m pytest -c pytest-kailash.ini --rootdir . --confcutdir . \
        -q --junitxml="$OUT/kailash.xml" "${@:2}" | tail -3
    set -e
    echo "kailash $("$VENV/bin/python" -c 'import kailash; print(kailash.__version__)'): passed $(count "$OUT/kailash.xml")"
    ;;
trioworks)
    cd "$ROOT"
    export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" CONFORMANCE_TARGET=trioworks
    set +e
    .venv/bin/python -m pytest "$SUITE" -q -p no:cacheprovider --continue-on-collection-errors \
        --junitxml="$OUT/strict.xml" "${@:2}" | tail -1
    CONFORMANCE_LENIENT=1 .venv/bin/python -m pytest "$SUITE" -q -p no:cacheprovider \
        --junitxml="$OUT/lenient.xml" "${@:2}" | tail -1
    set -e
    echo "trioworks strict: passed $(count "$OUT/strict.xml") collected; lenient: passed $(count "$OUT/lenient.xml")"
    .venv/bin/python "$SUITE/_status.py" "$OUT/lenient.xml" "$OUT/strict.xml" > "$OUT/status-tables.md"
    echo "STATUS tables: $OUT/status-tables.md"
    ;;
*)
    echo "usage: $0 [kailash|trioworks] [pytest args...]" >&2
    exit 2
    ;;
esac
