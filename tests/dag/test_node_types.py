"""The node types Kailash users reach for, against real things: files, a local HTTP server,
SQLite, Postgres, an OpenAI-compatible stand-in and the real MiniLM."""

from __future__ import annotations

import http.server
import json
import math
import socket
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from trioworks.dag import (
    AsyncHTTPRequestNode,
    AsyncLocalRuntime,
    CSVReaderNode,
    EmbeddingGeneratorNode,
    HTTPRequestNode,
    LLMAgentNode,
    LocalRuntime,
    NodeExecutionError,
    NodeValidationError,
    SQLDatabaseNode,
    WorkflowBuilder,
    WorkflowExecutionError,
)
from trioworks.dag._sql_node import rewrite_placeholders

# --- a real local HTTP server -----------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET /json, /text, /status/<n>; POST /echo; POST /v1/chat/completions (SSE, OpenAI-style)."""

    seen: ClassVar[list[dict[str, Any]]] = []
    protocol_version = "HTTP/1.0"

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _record(self, body: bytes) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.seen.append(
            {
                "method": self.command,
                "path": url.path,
                "query": dict(urllib.parse.parse_qsl(url.query)),
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body,
            }
        )

    def do_GET(self) -> None:
        self._record(b"")
        path = urllib.parse.urlsplit(self.path).path
        if path == "/json":
            self._send(200, json.dumps({"query": self.seen[-1]["query"]}).encode(), "application/json")
        elif path == "/text":
            self._send(200, b"plain words", "text/plain; charset=utf-8")
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), b'{"error": "nope"}', "application/json")
        else:
            self._send(404, b"", "text/plain")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._record(body)
        if self.path == "/v1/chat/completions":
            request = json.loads(body)
            last = request["messages"][-1]["content"]
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for piece in ("Echo:", f" {last}"):
                event = {"model": request["model"], "choices": [{"index": 0, "delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        self._send(200, json.dumps({"got": body.decode()}).encode(), "application/json")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen.clear()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _run(wb: WorkflowBuilder, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    with LocalRuntime() as runtime:
        results, _ = runtime.execute(wb.build(), parameters=parameters or {})
    return results


# --- HTTP -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("node_type", ["HTTPRequestNode", "AsyncHTTPRequestNode"])
def test_http_get_json_in_a_workflow(server: str, node_type: str) -> None:
    wb = WorkflowBuilder()
    wb.add_node(
        node_type, "get", {"url": f"{server}/json", "params": {"q": "trio"}, "headers": {"X-Test": "1"}}
    )
    wb.add_node("PythonCodeNode", "pick", {"code": "result = response['content']['query']['q']"})
    wb.add_connection("get", "response", "pick", "response")
    results = _run(wb)
    got = results["get"]
    assert got["success"] is True and got["status_code"] == 200
    assert got["response"]["content"] == {"query": {"q": "trio"}}
    assert got["response"]["content_type"] == "application/json"
    assert got["response"]["url"].startswith(f"{server}/json?")
    assert results["pick"] == {"result": "trio"}
    assert _Handler.seen[-1]["headers"]["x-test"] == "1"


def test_http_post_json_data_auth_and_text(server: str) -> None:
    node = HTTPRequestNode()
    out = node.execute(
        url=f"{server}/echo", method="post", json_data={"a": 1}, auth_type="bearer", auth_token="tok"
    )
    assert json.loads(out["response"]["content"]["got"]) == {"a": 1}
    assert _Handler.seen[-1]["headers"]["authorization"] == "Bearer tok"
    # Kailash's ``json`` spelling, and a form body.
    node.execute(url=f"{server}/echo", method="POST", json={"b": 2})
    assert json.loads(_Handler.seen[-1]["body"]) == {"b": 2}
    node.execute(url=f"{server}/echo", method="POST", data={"k": "v w"})
    assert _Handler.seen[-1]["body"] == b"k=v+w"
    text = node.execute(url=f"{server}/text")
    assert text["response"]["content"] == "plain words"


@pytest.mark.parametrize("node_cls", [HTTPRequestNode, AsyncHTTPRequestNode])
def test_http_error_status_and_refused_connection_are_results(server: str, node_cls: type) -> None:
    missing = node_cls().execute(url=f"{server}/status/404")
    assert missing["success"] is False and missing["status_code"] == 404
    assert missing["recovery_suggestions"]
    refused = node_cls().execute(url=_closed_port(), retry_count=1, retry_backoff=0)
    assert refused["success"] is False and refused["response"] is None
    assert refused["error_type"] == "ConnectError"


def test_http_bad_input_names_the_parameter(server: str) -> None:
    with pytest.raises(NodeValidationError, match="method"):
        HTTPRequestNode().execute(url=server, method="FETCH")
    with pytest.raises(NodeValidationError, match="url"):
        HTTPRequestNode().execute()
    with pytest.raises(NodeValidationError, match="response_format"):
        HTTPRequestNode().execute(url=server, response_format="xml")


# --- files ------------------------------------------------------------------------------------------


def test_file_nodes_round_trip_with_kailash_names(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("id;name\n1;ada\n2;grace\n", encoding="utf-8")
    wb = WorkflowBuilder()
    wb.add_node("CSVReaderNode", "read", {"file_path": str(src), "delimiter": ";", "index_column": "id"})
    wb.add_node("CSVWriterNode", "write_csv", {"file_path": str(tmp_path / "out.csv")})
    wb.add_node("JSONWriterNode", "write_json", {"file_path": str(tmp_path / "out.json")})
    wb.add_node("TextWriterNode", "write_text", {"file_path": str(tmp_path / "out.txt"), "text": "héllo"})
    wb.add_connection("read", "data", "write_csv", "data")
    wb.add_connection("read", "data_indexed", "write_json", "data")
    results = _run(wb)
    assert results["read"]["data"] == [{"id": "1", "name": "ada"}, {"id": "2", "name": "grace"}]
    assert results["write_csv"] == {"rows_written": 2, "file_path": str(tmp_path / "out.csv")}
    assert results["write_text"]["bytes_written"] == len("héllo".encode())
    assert (tmp_path / "out.csv").read_text().splitlines() == ["id,name", "1,ada", "2,grace"]
    assert json.loads((tmp_path / "out.json").read_text())["2"] == {"id": "2", "name": "grace"}

    wb = WorkflowBuilder()
    wb.add_node("JSONReaderNode", "j", {"file_path": str(tmp_path / "out.json")})
    wb.add_node("TextReaderNode", "t", {"file_path": str(tmp_path / "out.txt")})
    wb.add_node(
        "TextWriterNode", "more", {"file_path": str(tmp_path / "out.txt"), "text": "!", "append": True}
    )
    wb.add_connection("t", "text", "more", "unused")  # orders the append after the read
    results = _run(wb)
    assert results["j"]["data"]["1"]["name"] == "ada"
    assert results["t"] == {"text": "héllo"}
    assert (tmp_path / "out.txt").read_text() == "héllo!"


def test_missing_file_names_the_node(tmp_path: Path) -> None:
    with pytest.raises(NodeExecutionError, match=r"reader.*No such file"):
        CSVReaderNode(_node_id="reader").execute(file_path=str(tmp_path / "absent.csv"))


# --- SQL --------------------------------------------------------------------------------------------

HOSTILE = "x'); DROP TABLE people; --"


def _sql_flow(url: str) -> WorkflowBuilder:
    wb = WorkflowBuilder()
    wb.add_node(
        "SQLDatabaseNode",
        "create",
        {
            "connection_string": url,
            "query": "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL)",
        },
    )
    wb.add_node(
        "SQLDatabaseNode",
        "insert",
        {
            "connection_string": url,
            "query": "INSERT INTO people (id, name, score) VALUES ($1, $2, $3), ($4, $5, $6)",
            "parameters": [1, "ada", 1.5, 2, HOSTILE, 2.5],
        },
    )
    wb.add_node(
        "SQLDatabaseNode",
        "select",
        {
            "connection_string": url,
            "query": "SELECT id, name FROM people WHERE score > :low AND name LIKE '%' ORDER BY id",
            "parameters": {"low": 1.0},
        },
    )
    wb.add_connection("create", "row_count", "insert", "after")
    wb.add_connection("insert", "row_count", "select", "after")
    return wb


def _check_sql(results: dict[str, Any]) -> None:
    assert results["insert"]["row_count"] == 2
    assert results["select"]["columns"] == ["id", "name"]
    assert results["select"]["data"] == [{"id": 1, "name": "ada"}, {"id": 2, "name": HOSTILE}]
    assert results["select"]["row_count"] == 2
    assert results["select"]["execution_time"] >= 0


def test_sql_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "people.db"
    url = f"sqlite:///{db}"  # an absolute path: sqlite:////tmp/...
    _check_sql(_run(_sql_flow(url)))
    listed = SQLDatabaseNode(connection_string=url).execute(
        query="SELECT name FROM people WHERE id = ?", parameters=2, result_format="list"
    )
    assert listed["data"] == [[HOSTILE]]
    # A failing statement rolls its transaction back.
    with pytest.raises(NodeExecutionError, match="database error"):
        SQLDatabaseNode(connection_string=url).execute(
            query="INSERT INTO people (id, name) VALUES (?, ?)", parameters=[1, "dup"]
        )
    assert sqlite3.connect(db).execute("SELECT count(*) FROM people").fetchone() == (2,)


def test_sql_on_postgres(fresh_postgres_url: str) -> None:
    url = fresh_postgres_url
    _check_sql(_run(_sql_flow(url)))
    node = SQLDatabaseNode(connection_string=url)
    out = node.execute(
        query="SELECT name, score::text AS s FROM people WHERE name = %s OR id = ? ORDER BY id",
        parameters=["ada", 2],
    )
    assert out["data"] == [{"name": "ada", "s": "1.5"}, {"name": HOSTILE, "s": "2.5"}]
    assert node.execute(query="SELECT count(*) AS n FROM people")["data"] == [{"n": 2}]


def test_sql_bad_input_is_named() -> None:
    with pytest.raises(NodeValidationError, match="query"):
        SQLDatabaseNode(connection_string="sqlite:///:memory:").execute()
    with pytest.raises(NodeValidationError, match="unsupported database"):
        SQLDatabaseNode(connection_string="mysql://h/db").execute(query="SELECT 1")
    with pytest.raises(NodeValidationError, match="result_format"):
        SQLDatabaseNode(connection_string="sqlite://").execute(query="SELECT 1", result_format="csv")
    with pytest.raises(NodeValidationError, match="must be a dict"):
        SQLDatabaseNode(connection_string="sqlite://").execute(query="SELECT :a", parameters=[1])


def test_placeholders_are_rewritten_not_formatted() -> None:
    sql, values = rewrite_placeholders("SELECT ':no', $2, $1, '%' WHERE a = $2", [10, 20], "postgresql")
    assert sql == "SELECT ':no', %s, %s, '%%' WHERE a = %s"
    assert values == [20, 10, 20]
    sql, values = rewrite_placeholders("SELECT x::int, :a, 5 % 2", {"a": 1}, "postgresql")
    assert sql == "SELECT x::int, %(a)s, 5 %% 2"
    sql, _ = rewrite_placeholders("SELECT $2, $1", [1, 2], "sqlite")
    assert sql == "SELECT ?2, ?1"
    sql, _ = rewrite_placeholders("SELECT %s, ?, '%'", [1, 2], "sqlite")
    assert sql == "SELECT ?, ?, '%'"
    with pytest.raises(NodeValidationError, match="mixes"):
        rewrite_placeholders("SELECT ?, :a", [1], "sqlite")
    with pytest.raises(NodeValidationError, match="mixes"):
        rewrite_placeholders("SELECT ?, $1", [1], "postgresql")


# --- LLM and embeddings ---------------------------------------------------------------------------


def test_llm_agent_defaults_to_the_offline_backend() -> None:
    wb = WorkflowBuilder()
    wb.add_node("LLMAgentNode", "agent", {"prompt": "hello there"})
    results = _run(wb)
    out = results["agent"]
    assert out["success"] is True
    assert out["response"]["role"] == "assistant"
    assert out["response"]["content"].endswith("You said: hello there")
    assert out["response"]["finish_reason"] == "stop"
    assert out["metadata"]["provider"] == "mock"


def test_llm_agent_on_an_openai_compatible_endpoint(server: str) -> None:
    node = LLMAgentNode()
    out = node.execute(
        provider="ollama",
        base_url=f"{server}/v1",
        model="stand-in",
        api_key="sk-test",
        system_prompt="be brief",
        messages=[{"role": "user", "content": "ping"}],
        generation_config={"temperature": 0.1, "max_tokens": 5},
    )
    assert out["success"] is True
    assert out["response"]["content"] == "Echo: ping"
    assert out["response"]["model"] == "stand-in"
    sent = json.loads(_Handler.seen[-1]["body"])
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "ping"},
    ]
    assert sent["temperature"] == 0.1 and sent["max_tokens"] == 5
    assert _Handler.seen[-1]["headers"]["authorization"] == "Bearer sk-test"


async def test_llm_agent_failure_is_a_result_and_bad_input_an_error() -> None:
    out = await LLMAgentNode().execute_async(
        provider="openai", base_url=f"{_closed_port()}/v1", prompt="hi", max_retries=0
    )
    assert out["success"] is False and "openai backend" in out["error"]
    with pytest.raises(NodeValidationError, match="base_url"):
        await LLMAgentNode().execute_async(provider="anthropic", prompt="hi")
    with pytest.raises(NodeValidationError, match="messages"):
        await LLMAgentNode().execute_async()


@pytest.fixture(scope="module")
def has_minilm() -> None:
    pytest.importorskip("numpy")
    from trioworks.dag._ai_nodes import shared_minilm
    from trioworks.services.memory import ModelNotInstalled

    try:
        shared_minilm()
    except ModelNotInstalled as exc:
        pytest.skip(f"MiniLM weights not installed: {exc}")


def test_embeddings_with_the_real_minilm(has_minilm: None) -> None:
    wb = WorkflowBuilder()
    wb.add_node("EmbeddingGeneratorNode", "one", {"input_text": "The cat sat on the mat."})
    wb.add_node(
        "EmbeddingGeneratorNode",
        "batch",
        {
            "operation": "embed_batch",
            "input_texts": ["A kitten rests on a rug.", "Stock prices fell sharply."],
        },
    )
    results = _run(wb)
    vector = results["one"]["embedding"]
    assert results["one"]["dimensions"] == 384 and results["one"]["success"] is True
    assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-4)
    kitten, stocks = (e["embedding"] for e in results["batch"]["embeddings"])
    node = EmbeddingGeneratorNode()
    near = node.execute(operation="calculate_similarity", embedding_1=vector, embedding_2=kitten)
    far = node.execute(operation="calculate_similarity", embedding_1=vector, embedding_2=stocks)
    assert near["similarity"] > far["similarity"] + 0.2
    texts = node.execute(operation="calculate_similarity", input_texts=["same words", "same words"])
    assert math.isclose(texts["similarity"], 1.0, rel_tol=1e-4)


def test_embedding_bad_input_is_named() -> None:
    with pytest.raises(NodeValidationError, match="operation"):
        EmbeddingGeneratorNode().execute(operation="embed_everything")
    with pytest.raises(NodeValidationError, match="provider"):
        EmbeddingGeneratorNode().execute(provider="openai", input_text="x")
    with pytest.raises(NodeValidationError, match="input_text"):
        EmbeddingGeneratorNode().execute()


async def test_sync_nodes_run_in_threads_and_async_nodes_on_the_loop(server: str, tmp_path: Path) -> None:
    """The runtime's metrics: a thread per sync node (HTTP, SQL), none for the async HTTP node."""
    wb = WorkflowBuilder()
    wb.add_node("AsyncHTTPRequestNode", "a", {"url": f"{server}/json"})
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert result.metrics["max_threads"] == 0
    wb = WorkflowBuilder()
    wb.add_node("HTTPRequestNode", "s", {"url": f"{server}/json"})
    wb.add_node(
        "SQLDatabaseNode", "q", {"connection_string": f"sqlite:///{tmp_path}/x.db", "query": "SELECT 1"}
    )
    result = await AsyncLocalRuntime().execute_workflow_async(wb.build())
    assert result.metrics["max_threads"] >= 1


def test_failing_node_in_a_workflow_names_it(tmp_path: Path) -> None:
    wb = WorkflowBuilder()
    wb.add_node(
        "SQLDatabaseNode", "q", {"connection_string": f"sqlite:///{tmp_path}/x.db", "query": "SELEC 1"}
    )
    wb.add_node("PythonCodeNode", "after", {"code": "result = data"})
    wb.add_connection("q", "data", "after", "data")
    with pytest.raises(WorkflowExecutionError, match="'q'"):
        AsyncLocalRuntime().execute(wb.build())
