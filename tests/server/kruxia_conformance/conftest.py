"""Kruxia Flow conformance suite: every upstream example, deployed and run as Kruxia's README says.

Part of the default run against a SQLite server (about 30 s); ``TRIOWORKS_CONFORMANCE=1`` adds the
same cases against a Postgres server. ``TRIOWORKS_CONFORMANCE_NETWORK=1`` also runs the examples
whose scripts reach the internet themselves; ``TRIOWORKS_CONFORMANCE_SLOW=1`` the ones that wait
minutes by design (none now: 08c runs on a fast server clock, ``Case.clock_speed``).

    TRIOWORKS_CONFORMANCE=1 PYTHONPATH=$PWD/src .venv/bin/python -m pytest -q tests/server/kruxia_conformance
"""

# The server backends: cases.BACKENDS.
