"""The server's ``PendingActivity`` and the worker's are two views of one wire message.

They stay two classes on purpose: the server's is the producer's, typed (``OutputDef``) and
strict; the worker's is the consumer's, tolerant of what any Kruxia server sends (defaults,
output definitions as plain objects). Neither package imports the other; this test is what keeps
them from drifting: every field the server sends reaches the worker under the same name, with
the same value, through the JSON that travels between them.
"""

from __future__ import annotations

import json

import attrs

from trioworks.server import OutputDef, PendingActivity
from trioworks.server._wire import converter as server_converter
from trioworks.worker import PendingActivity as WorkerPendingActivity
from trioworks.worker._wire import converter as worker_converter


def _through_the_wire(activity: PendingActivity) -> WorkerPendingActivity:
    body = json.loads(json.dumps({"activities": [server_converter.unstructure(activity)], "count": 1}))
    return worker_converter.structure(body["activities"][0], WorkerPendingActivity)


def test_both_sides_name_the_same_fields() -> None:
    assert [f.name for f in attrs.fields(PendingActivity)] == [
        f.name for f in attrs.fields(WorkerPendingActivity)
    ]


def test_every_field_the_server_sends_reaches_the_worker() -> None:
    full = PendingActivity(
        activity_id="7d1c0c1e-0000-4000-8000-000000000001",
        workflow_id="7d1c0c1e-0000-4000-8000-000000000002",
        activity_key="fetch",
        worker="std",
        activity_name="fetch_url",
        parameters={"url": "https://example.org", "n": [1, 2]},
        settings={"timeout_seconds": 2.5, "retry": {"max_attempts": 3}},
        timeout_seconds=3,
        output_definitions=[OutputDef("body"), OutputDef("page", "file")],
        signal_data={"approved": True},
    )
    got = _through_the_wire(full)
    for field in attrs.fields(PendingActivity):
        if field.name != "output_definitions":
            assert getattr(got, field.name) == getattr(full, field.name), field.name
    assert got.output_definitions == [{"name": "body", "type": "value"}, {"name": "page", "type": "file"}]


def test_optional_fields_left_out_by_the_server_take_the_worker_defaults() -> None:
    bare = PendingActivity("a", "w", "k", "std", "n", parameters={}, settings=None, timeout_seconds=None)
    got = _through_the_wire(bare)
    assert (got.output_definitions, got.signal_data, got.settings, got.timeout_seconds) == (
        None,
        None,
        None,
        None,
    )
