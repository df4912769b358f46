"""trioworks: three asyncio systems rebuilt on Trio structured concurrency.

Subpackages (each exports its public names in ``__all__``; modules named ``_x`` are private):

- :mod:`trioworks.core`: offload, retry, supervision, correlation and metrics shared by every
  subsystem; depends on nothing else in trioworks.
- :mod:`trioworks.dag`: a Kailash-compatible workflow builder and a Trio DAG runtime.
- :mod:`trioworks.worker`: the Kruxia Flow activity worker (wire-compatible with its server);
  ``trioworks.worker.std`` has the original's standard activities.
- :mod:`trioworks.client`: a Kruxia Flow API client (Trio and blocking) and the original SDK's
  workflow DSL (``Workflow``, ``Activity``, expressions), under the SDK's names.
- :mod:`trioworks.server`: the reference Kruxia Flow server (HTTP API, SQLite or Postgres
  storage, lease sweeper).
- :mod:`trioworks.bus`: the voice services' message bus (in-process or MQTT) and its contracts.
- :mod:`trioworks.services`: the voice services on the bus (stt, memory, llm, tts, router), one
  subpackage each.
- :mod:`trioworks.demo`: what ``trioworks demo`` runs (a DAG ETL, a workflow on the embedded
  server, one voice turn) and the highlights it checks against each run.
- :mod:`trioworks.cli`: the ``trioworks`` command line, a thin layer over the subsystems.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
