"""The service fixtures themselves: each starts something real that answers."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from _services import MosquittoBroker, PostgresCluster, ServiceUnavailable, find_program


def test_postgres_url_answers_select_1(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.dbname == "trioworks_test"


def test_fresh_postgres_databases_are_separate(postgres_url: str, fresh_postgres_url: str) -> None:
    import psycopg

    assert fresh_postgres_url != postgres_url
    with psycopg.connect(fresh_postgres_url) as conn:
        conn.execute("CREATE TABLE only_here (x int)")
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute("SELECT to_regclass('only_here')").fetchone()
    assert found == (None,)


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def test_mosquitto_accepts_connections(mosquitto_url: str, mosquitto_broker: MosquittoBroker) -> None:
    assert mosquitto_url == f"mqtt://127.0.0.1:{mosquitto_broker.port}"
    assert _connects(mosquitto_broker.port)


def test_mosquitto_restart_keeps_the_port(fresh_mosquitto: MosquittoBroker) -> None:
    port = fresh_mosquitto.port
    fresh_mosquitto.stop()
    assert not fresh_mosquitto.running
    assert not _connects(port)
    fresh_mosquitto.restart()
    assert fresh_mosquitto.port == port
    assert _connects(port)


def test_mosquitto_round_trip(mosquitto_broker: MosquittoBroker) -> None:
    """A retained message published with mosquitto_pub comes back to mosquitto_sub: a real broker."""
    try:
        pub, sub = find_program("mosquitto_pub", package="mosquitto-clients"), find_program("mosquitto_sub")
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))
    port = str(mosquitto_broker.port)
    subprocess.run([pub, "-p", port, "-t", "fixture/check", "-r", "-m", "hello"], check=True, timeout=10)
    out = subprocess.run(
        [sub, "-p", port, "-t", "fixture/check", "-C", "1", "-W", "5"],
        check=True,
        timeout=10,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "hello"


def test_missing_program_is_a_clear_error() -> None:
    with pytest.raises(
        ServiceUnavailable, match=r"no-such-program-xyz not installed: run scripts/system-deps.sh"
    ):
        find_program("no-such-program-xyz")


def test_cluster_close_removes_its_directory(postgres_cluster: PostgresCluster) -> None:
    # A second cluster never started (no initdb: cheap); stop() is exercised by restart tests.
    cluster = PostgresCluster()
    root = Path(cluster.root)
    assert root.is_dir()
    cluster.close()
    assert not root.exists()


def test_espeak_ng_writes_a_wav_that_sox_reads(espeak_ng: str, sox: str, tmp_path: Path) -> None:
    wav = tmp_path / "hello.wav"
    subprocess.run([espeak_ng, "-w", str(wav), "hello"], check=True, timeout=30, capture_output=True)
    info = subprocess.run(
        [sox, "--i", "-r", str(wav)], check=True, timeout=30, capture_output=True, text=True
    )
    assert int(info.stdout.strip()) > 8000  # espeak-ng's native rate is 22050 Hz
    resampled = tmp_path / "16k.wav"
    subprocess.run([sox, str(wav), "-r", "16000", str(resampled)], check=True, timeout=30)
    assert resampled.stat().st_size > 1000


def test_system_deps_script_without_apt_says_what_is_missing_and_succeeds() -> None:
    script = Path(__file__).resolve().parent.parent / "scripts" / "system-deps.sh"
    # Nothing on PATH: the programs under /usr/bin look missing and there is no apt-get to call.
    done = subprocess.run(
        ["/bin/bash", str(script)], env={"PATH": "/nonexistent"}, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert "missing:" in done.stderr and "espeak-ng" in done.stderr and "sox" in done.stderr
    assert "apt-get not available" in done.stderr
