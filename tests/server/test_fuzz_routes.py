"""Hypothesis over every route of the server: no input gets a 5xx, and nobody else's workflow changes.

One real server (its HTTP front, SQLite, a :class:`ManualClock` so no lease expires while fuzzing) runs
in a thread of its own for the whole module; the examples are plain synchronous HTTP requests, so
hypothesis drives them without an event loop per example. Before fuzzing, a *victim* workflow is
started on a worker slug the fuzzer is never told, and its first activity is claimed: whatever the
fuzzer sends, that workflow must read the same afterwards and still complete (the last test).

The fuzzer does get the ids of workflows of its own (definition ``fz``, worker ``std``) so that
path parameters hit real rows too, and after every example it polls ``std`` and completes what it
got: an input that poisons the queue (issue 10, case 1) shows up as a 5xx there.

The inputs of issue 10's cases (non-finite numbers, huge numbers in settings, deep or aliased
YAML, long file names) are drawn by the fuzzers and also pinned one by one by the tests at the end.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import ManualClock, activity

from trioworks.server import Server, ServerConfig

# In the suite: a fixed set of examples (derandomized), so a run's verdict never depends on luck.
# TRIOWORKS_FUZZ_EXPLORE=N draws N fresh random examples per fuzzer instead, to hunt for new bugs.
EXPLORE = int(os.environ.get("TRIOWORKS_FUZZ_EXPLORE", "0"))
FUZZ = settings(
    max_examples=EXPLORE or 60,
    derandomize=not EXPLORE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # the server's state carries over between examples: replaying old ones misleads
)


# -- the server, in a thread -------------------------------------------------------------------
class ThreadedServer:
    """:class:`Server` run by ``trio.run`` in a daemon thread; ``url`` once it listens."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.url = ""
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._thread = threading.Thread(target=self._run, name="fuzzed-server", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._token = trio.lowlevel.current_trio_token()
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self.url = await nursery.start(Server(self.config).run)
                self._started.set()

        try:
            trio.run(main)
        except BaseException as exc:
            self._error = exc
        finally:
            self._started.set()

    def __enter__(self) -> ThreadedServer:
        # A handler error that escapes the app is logged by the HTTP front, formatting its
        # traceback (ast.parse in 3.11) while the test thread may be parsing too: CPython 3.11's
        # shared ast recursion counter then fails pytest with "AST constructor recursion depth
        # mismatch". The server's own log line (written before the 500 is sent) is kept.
        self._front_log = logging.getLogger("trioworks.server.http")
        self._was_disabled, self._front_log.disabled = self._front_log.disabled, True
        self._thread.start()
        self._started.wait(120)
        if self._error is not None or not self.url:
            raise RuntimeError(f"the server did not start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._scope is not None and self._token is not None:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
        self._thread.join(60)
        self._front_log.disabled = self._was_disabled
        assert self._error is None, f"the server crashed: {self._error!r}"


VICTIM = {
    "name": "victim",
    "activities": [
        activity("a", worker="victim-only", parameters={"n": "{{INPUT.n}}"}),
        activity("b", "a", worker="victim-only", parameters={"m": "{{a.m}}"}),
    ],
}
OWN = {
    "name": "fz",
    "activities": [activity("one", parameters={"v": "{{INPUT.v}}"}), activity("two", "one")],
}


class Fuzzed:
    """The running server, an authenticated and an anonymous client, and the ids the fuzzer may use."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)
        self.anon = httpx.Client(base_url=url, timeout=60)
        token = self.http.post(
            "/api/v1/oauth/token",
            json={"grant_type": "client_credentials", "client_id": "client", "client_secret": "s3cret"},
        )
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        for definition in (VICTIM, OWN):
            assert self.http.post("/api/v1/workflow_definitions", json=definition).status_code == 201
        victim = self.http.post("/api/v1/workflows", json={"definition_name": "victim", "input": {"n": 7}})
        self.victim_id: str = victim.json()["workflow_id"]
        claimed = self.poll("victim-only", "victim-w")
        assert len(claimed) == 1
        self.victim_activity: str = claimed[0]["activity_id"]
        self.workflow_ids = [self.submit_own() for _ in range(3)]
        self.activity_ids = [a["activity_id"] for a in self.poll("std", "own", 2)]

    def poll(self, worker: str, worker_id: str, most: int = 10) -> list[dict[str, Any]]:
        reply = send(
            self.http,
            "POST",
            "/api/v1/workers/poll",
            json={"worker": worker, "worker_id": worker_id, "max_activities": most},
        )
        assert reply.status_code == 200, reply.text
        return list(reply.json()["activities"])

    def submit_own(self) -> str:
        reply = send(
            self.http, "POST", "/api/v1/workflows", json={"definition_name": "fz", "input": {"v": 1}}
        )
        assert reply.status_code == 201, reply.text
        return str(reply.json()["workflow_id"])

    def victim(self) -> dict[str, Any]:
        return dict(send(self.http, "GET", f"/api/v1/workflows/{self.victim_id}").json())

    def settle(self) -> None:
        """Poll ``std`` and complete what comes: a poisoned queue answers 5xx here."""
        for item in self.poll("std", "settler", 100):
            reply = send(
                self.http,
                "POST",
                f"/api/v1/activities/{item['activity_id']}/complete",
                json={"worker_id": "settler", "output": {"ok": True}},
            )
            assert reply.status_code < 500, (item, reply.text)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    root = tmp_path_factory.mktemp("fuzz")
    config = ServerConfig(
        db=str(root / "fuzz.db"),
        port=0,
        clients={"client": "s3cret"},
        clock=ManualClock(),
        sweep_interval=3600.0,
        max_body_bytes=256 * 1024,
        max_file_bytes=64 * 1024,
    )
    with ThreadedServer(config) as server:
        state = Fuzzed(server.url)
        try:
            yield state
        finally:
            state.http.close()
            state.anon.close()


# -- strategies --------------------------------------------------------------------------------
class Raw:
    """A token written into the JSON text as is (``1e400``, ``10**400`` digits, ``NaN``)."""

    def __init__(self, text: str) -> None:
        self.text = text


def dump(value: Any) -> str:
    """JSON text of ``value``, with :class:`Raw` tokens spliced in."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dump(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


texts = st.text(max_size=30) | st.sampled_from(["", "\x00", "a\x00b", "../../etc/passwd", "é" * 40, "std"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**53, max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def _deep(depth: int) -> Raw:
    return Raw("[" * depth + "]" * depth)


hostile_tokens = [Raw("1" * 5000), _deep(300), _deep(20000), Raw('"' + "x" * 50_000 + '"')]
# case 1 (non-finite) and case 8 (out of the range storage takes)
hostile_tokens += [
    Raw("1e400"),
    Raw("-1e400"),
    Raw("NaN"),
    Raw("Infinity"),
    Raw("1" * 400),
    Raw("-" + "9" * 30),
]
hostile = json_values | st.sampled_from(hostile_tokens)


def objects(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with some of ``fields`` (each its own strategy, or a hostile value) and stray keys."""
    return st.fixed_dictionaries(
        {}, optional={name: strategy | hostile for name, strategy in fields.items()}
    ) | st.dictionaries(texts, hostile, max_size=4)


def bodies(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[bytes]:
    structured = (objects(fields) | hostile).map(lambda v: dump(v).encode())
    raw = st.binary(max_size=64) | st.sampled_from([b"", b"{", b"\xff\xfe", b'{"a": 1}{', b"\x00"])
    return structured | raw


ids = st.sampled_from(
    ["nope", "0", "\x00", "..", "a" * 300, "00000000-0000-0000-0000-000000000000"]
) | st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
small_int = st.integers(min_value=-5, max_value=200)
usage = st.lists(st.fixed_dictionaries({}, optional={"model": texts, "tokens": hostile}), max_size=2)
ROUTE_BODIES: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "poll": {"worker": texts, "worker_id": texts, "max_activities": small_int},
    "heartbeat": {"worker_id": texts, "progress": hostile},
    "complete": {"worker_id": texts, "output": json_values, "cost_usd": hostile, "usage": usage},
    "fail": {
        "worker_id": texts,
        "error": st.fixed_dictionaries(
            {}, optional={"code": texts, "message": texts, "retryable": st.booleans() | hostile}
        ),
        "cost_usd": hostile,
        "usage": usage,
    },
    "submit": {
        "definition_name": st.sampled_from(["fz", "victim", "nope"]) | texts,
        "input": json_values,
        "version": small_int,
        "unique_key": texts,
    },
    "start": {"name": st.sampled_from(["fz", "nope"]) | texts, "inputs": json_values, "version": small_int},
    "signal": {
        "activity_key": st.sampled_from(["one", "two"]) | texts,
        "event_name": texts,
        "data": json_values,
    },
    "token": {
        "grant_type": st.just("client_credentials") | texts,
        "client_id": st.just("client") | texts,
        "client_secret": st.just("s3cret") | texts,
    },
}


# -- the fuzzers -------------------------------------------------------------------------------
def pick_id(draw: st.DrawFn, real: list[str]) -> str:
    """A real id or any string, percent-encoded as one path segment (the server decodes it)."""
    return quote(draw(st.sampled_from(real) | ids), safe="")


def send(http: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """``http.request``; a kept-alive connection the server closed meanwhile (a race of the
    client's pool, not an answer) is retried once on a new one. Twice is the server's doing."""
    try:
        return http.request(method, path, **kwargs)
    except httpx.RemoteProtocolError:
        with httpx.Client(base_url=http.base_url, headers=http.headers, timeout=60) as fresh:
            return fresh.request(method, path, **kwargs)


def check(reply: httpx.Response, what: str) -> None:
    assert reply.status_code < 500, f"{what}: {reply.status_code} {reply.text[:500]}"


@st.composite
def json_posts(draw: st.DrawFn, state: Fuzzed) -> tuple[str, bytes, str]:
    route = draw(st.sampled_from(["poll", "heartbeat", "complete", "fail", "submit", "start", "signal"]))
    activity_id = pick_id(draw, state.activity_ids)
    workflow_id = pick_id(draw, state.workflow_ids)
    path = {
        "poll": "/api/v1/workers/poll",
        "heartbeat": f"/api/v1/activities/{activity_id}/heartbeat",
        "complete": f"/api/v1/activities/{activity_id}/complete",
        "fail": f"/api/v1/activities/{activity_id}/fail",
        "submit": "/api/v1/workflows",
        "start": "/api/v1/workflows/start",
        "signal": f"/api/v1/workflows/{workflow_id}/signal",
    }[route]
    kind = draw(
        st.sampled_from(["application/json", "application/json", "text/plain", "application/x+json", ""])
    )
    return path, draw(bodies(ROUTE_BODIES[route])), kind


def test_fuzz_json_posts(fuzzed: Fuzzed) -> None:
    before = fuzzed.victim()

    @FUZZ
    @given(data=st.data(), authenticated=st.booleans())
    def run(data: st.DataObject, authenticated: bool) -> None:
        path, body, kind = data.draw(json_posts(fuzzed))
        http = fuzzed.http if authenticated else fuzzed.anon
        headers = {"content-type": kind} if kind else {}
        check(send(http, "POST", path, content=body, headers=headers), f"POST {path}")
        fuzzed.settle()

    run()
    assert fuzzed.victim() == before


queries = st.dictionaries(
    st.sampled_from(["status", "definition_name", "limit", "offset", "version", "x"]) | texts,
    st.sampled_from(["", "1", "-1", "0", "1001", "99999999999999999999", "running", "fz"]) | texts,
    max_size=4,
)


@st.composite
def gets(draw: st.DrawFn, state: Fuzzed) -> str:
    workflow_id = pick_id(draw, state.workflow_ids)
    return draw(
        st.sampled_from(
            [
                "/health",
                "/health/ready",
                "/api/v1/info",
                "/api/v1/metrics",
                "/api/v1/workflow_definitions",
                f"/api/v1/workflow_definitions/{quote(draw(st.sampled_from(['fz', 'victim']) | ids), safe='')}",
                "/api/v1/workflows",
                f"/api/v1/workflows/{workflow_id}",
                f"/api/v1/workflows/{workflow_id}/output",
                f"/api/v1/workflows/{workflow_id}/activities/{quote(draw(st.sampled_from(['one', 'two']) | ids), safe='')}/output",
                f"/api/v1/workflows/{workflow_id}/activities/one/files/{quote(draw(ids), safe='/')}",
            ]
        )
    )


def test_fuzz_gets(fuzzed: Fuzzed) -> None:
    before = fuzzed.victim()

    @FUZZ
    @given(data=st.data(), params=queries, authenticated=st.booleans())
    def run(data: st.DataObject, params: dict[str, str], authenticated: bool) -> None:
        path = data.draw(gets(fuzzed))
        http = fuzzed.http if authenticated else fuzzed.anon
        check(send(http, "GET", path, params=params), f"GET {path}?{params}")

    run()
    assert fuzzed.victim() == before


def test_fuzz_token(fuzzed: Fuzzed) -> None:
    @FUZZ
    @given(
        body=bodies(ROUTE_BODIES["token"]) | st.binary(max_size=200),
        kind=st.sampled_from(["application/json", "application/x-www-form-urlencoded", "text/plain", ""]),
    )
    def run(body: bytes, kind: str) -> None:
        headers = {"content-type": kind} if kind else {}
        check(send(fuzzed.anon, "POST", "/api/v1/oauth/token", content=body, headers=headers), "token")

    run()


names = st.sampled_from(["fz2", "victim", "x"]) | texts
settings_values = st.fixed_dictionaries(
    {},
    optional={
        "timeout_seconds": st.integers(-2, 100) | st.floats(0.01, 1e6) | hostile,
        "retry": st.fixed_dictionaries(
            {},
            optional={
                "max_attempts": st.integers(-1, 20) | hostile,
                "strategy": st.sampled_from(["fixed", "exponential"]) | texts,
                "base_seconds": st.floats(0, 10) | hostile,
                "factor": st.floats(0, 10) | hostile,
                "max_seconds": st.floats(0, 1000) | hostile,
            },
        )
        | hostile,
        "wait_for_signal": st.booleans() | texts,
    },
)
settings_values = settings_values | st.sampled_from(
    [{"retry": {"max_attempts": 10**20}}, {"timeout_seconds": Raw("1" + "0" * 400)}]
)
activities = st.fixed_dictionaries(
    {},
    optional={
        "key": st.sampled_from(["a", "b"]) | texts,
        "worker": st.sampled_from(["std", "w-1"]) | texts,
        "activity_name": st.sampled_from(["run"]) | texts,
        "parameters": json_values,
        "depends_on": st.lists(st.sampled_from(["a", "b"]) | hostile, max_size=2),
        "outputs": st.lists(texts | hostile, max_size=2),
        "settings": settings_values | hostile,
    },
)
definitions = st.fixed_dictionaries(
    {"name": names, "activities": st.lists(activities, min_size=1, max_size=3) | hostile},
    optional={"description": texts | hostile},
)
YAML = ["application/yaml", "application/x-yaml", "text/yaml"]
yaml_bodies = st.sampled_from(
    [
        b"name: y\nactivities: [{key: a, worker: std, activity_name: run}]\n",
        b"a: &a [1, 2]\nb: [*a, *a, *a]\nname: y\nactivities: *a\n",  # a small alias: fine
        b"name: y\nactivities: [{key: a, worker: std, activity_name: run, parameters: {d: 2024-01-01}}]\n",
        b"name: .nan\nactivities: [.inf]\n",
        b"!!python/object/apply:os.system ['true']\n",
        b"\xff\xfe",
        b"- - -",
        b"{",
    ]
) | st.binary(max_size=80)
yaml_bodies = yaml_bodies | st.sampled_from([b"[" * 5000 + b"]" * 5000, b"a: &a [x]\n" + b"b: *a\n" * 50])


def test_fuzz_definitions(fuzzed: Fuzzed) -> None:
    """Deploy anything; whatever is accepted must also take a submit without a 5xx."""
    before = fuzzed.victim()

    @FUZZ
    @given(
        definition=definitions,
        as_yaml=st.booleans(),
        yaml_body=yaml_bodies,
        kind=st.sampled_from(YAML),
        route=st.sampled_from(["/api/v1/workflow_definitions", "/api/v1/workflows"]),
    )
    def run(definition: dict[str, Any], as_yaml: bool, yaml_body: bytes, kind: str, route: str) -> None:
        if as_yaml:
            reply = send(
                fuzzed.http,
                "POST",
                "/api/v1/workflow_definitions",
                content=yaml_body,
                headers={"content-type": kind},
            )
        else:
            body = dump(definition).encode()
            reply = send(
                fuzzed.http, "POST", route, content=body, headers={"content-type": "application/json"}
            )
        check(reply, f"deploy {route}")
        if reply.status_code in (200, 201):
            name = reply.json()["name"]
            started = fuzzed.http.post("/api/v1/workflows", json={"definition_name": name, "input": {"v": 1}})
            check(started, f"submit to the definition just deployed: {name!r}")
            fuzzed.settle()

    run()
    assert fuzzed.victim() == before


def test_fuzz_files(fuzzed: Fuzzed) -> None:
    before = fuzzed.victim()
    filenames = st.sampled_from(["f.txt", "a/b.txt", "../x", "a//b", ".hidden", "f" * 200, "é.txt"]) | texts
    # case 8
    filenames = filenames | st.sampled_from(["f" * 255, "f" * 300, "d/" * 100 + "f"])

    @FUZZ
    @given(
        data=st.data(),
        filename=filenames.filter(bool),
        content=st.binary(max_size=256),
        method=st.sampled_from(["POST", "PUT", "GET"]),
        authenticated=st.booleans(),
    )
    def run(data: st.DataObject, filename: str, content: bytes, method: str, authenticated: bool) -> None:
        workflow_id = pick_id(data.draw, fuzzed.workflow_ids)
        key = quote(data.draw(st.sampled_from(["one", "two"]) | ids), safe="")
        path = f"/api/v1/workflows/{workflow_id}/activities/{key}/files/{quote(filename, safe='/')}"
        http = fuzzed.http if authenticated else fuzzed.anon
        content = b"" if method == "GET" else content
        check(send(http, method, path, content=content), f"{method} {path}")

    run()
    assert fuzzed.victim() == before


def test_victim_workflow_still_completes(fuzzed: Fuzzed) -> None:
    """Runs after the fuzzers (file order): the victim's claim held, and it finishes normally."""
    http = fuzzed.http
    beat = http.post(f"/api/v1/activities/{fuzzed.victim_activity}/heartbeat", json={"worker_id": "victim-w"})
    assert beat.status_code == 200, beat.text
    done = http.post(
        f"/api/v1/activities/{fuzzed.victim_activity}/complete",
        json={"worker_id": "victim-w", "output": {"m": 8}},
    )
    assert done.status_code == 200, done.text
    (second,) = fuzzed.poll("victim-only", "victim-w")
    assert second["parameters"] == {"m": 8}
    http.post(
        f"/api/v1/activities/{second['activity_id']}/complete", json={"worker_id": "victim-w", "output": {}}
    )
    assert fuzzed.victim()["status"] == "completed"


# -- issue 10's cases, one by one --------------------------------------------------------------
@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Fuzzed]:
    """A server of the test's own: these inputs may poison its queue for good."""
    config = ServerConfig(
        db=str(tmp_path / "x.db"), port=0, clients={"client": "s3cret"}, clock=ManualClock()
    )
    with ThreadedServer(config) as server:
        state = Fuzzed(server.url)
        try:
            yield state
        finally:
            state.http.close()
            state.anon.close()


def _post(state: Fuzzed, path: str, body: bytes, kind: str = "application/json") -> httpx.Response:
    return send(state.http, "POST", path, content=body, headers={"content-type": kind})


def test_hostile_non_finite_input_is_refused(fresh: Fuzzed) -> None:
    reply = _post(fresh, "/api/v1/workflows", b'{"definition_name": "fz", "input": {"v": 1e400}}')
    assert 400 <= reply.status_code < 500, reply.text


def test_hostile_huge_cost_is_refused(fresh: Fuzzed) -> None:
    activity_id = fresh.activity_ids[0]
    body = b'{"worker_id": "own", "output": {}, "cost_usd": 1' + b"0" * 400 + b"}"
    check(_post(fresh, f"/api/v1/activities/{activity_id}/complete", body), "complete with a huge cost")


def test_hostile_huge_max_attempts(fresh: Fuzzed) -> None:
    definition = {"name": "big", "activities": [activity("a", settings={"retry": {"max_attempts": 10**20}})]}
    deployed = fresh.http.post("/api/v1/workflow_definitions", json=definition)
    check(deployed, "deploy")
    if deployed.status_code == 201:
        check(fresh.http.post("/api/v1/workflows", json={"definition_name": "big", "input": {}}), "submit")


def test_hostile_huge_timeout(fresh: Fuzzed) -> None:
    body = dump(
        {"name": "slow", "activities": [activity("a", settings={"timeout_seconds": Raw("1" + "0" * 400)})]}
    )
    deployed = _post(fresh, "/api/v1/workflow_definitions", body.encode())
    check(deployed, "deploy")
    if deployed.status_code == 201:
        check(fresh.http.post("/api/v1/workflows", json={"definition_name": "slow", "input": {}}), "submit")


def test_hostile_deep_yaml(fresh: Fuzzed) -> None:
    check(
        _post(fresh, "/api/v1/workflow_definitions", b"[" * 5000 + b"]" * 5000, "application/yaml"),
        "deep YAML",
    )


def test_hostile_long_filename(fresh: Fuzzed) -> None:
    path = f"/api/v1/workflows/{fresh.workflow_ids[0]}/activities/one/files/{'f' * 300}"
    check(send(fresh.http, "POST", path, content=b"x"), "upload")
