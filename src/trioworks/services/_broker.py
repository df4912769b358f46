"""A local mosquitto for the MQTT quick start (``trioworks services run --broker``)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path

import trio

from ..core import start_process, stop_process
from ._audio import find_program
from ._stack import BrokerUnavailable, probe_broker

__all__ = ["MOSQUITTO_CONF", "local_broker", "mosquitto_conf"]

MOSQUITTO_CONF = "mosquitto.conf"
"""The configuration shipped in :mod:`trioworks.services` (listener 1883 on 127.0.0.1, anonymous)."""


def mosquitto_conf(port: int = 1883) -> str:
    """The shipped ``mosquitto.conf``, listening on ``port`` (127.0.0.1)."""
    text = resources.files("trioworks.services").joinpath(MOSQUITTO_CONF).read_text()
    return re.sub(r"(?m)^listener \d+ ", f"listener {port} ", text)


@contextlib.asynccontextmanager
async def local_broker(port: int, workdir: Path) -> AsyncIterator[str]:
    """Run mosquitto (the shipped configuration, on ``port``) while the block runs; yield its
    URL once it accepts connections.

    The configuration is written to ``workdir/mosquitto.conf``. Raises ``ProgramMissing`` without
    mosquitto and :exc:`BrokerUnavailable` when it does not come up (its stderr in the reason,
    e.g. the port is taken). mosquitto is killed and reaped when the block ends.
    """
    program = find_program("mosquitto")
    conf, log = workdir / MOSQUITTO_CONF, workdir / "mosquitto.log"
    await trio.Path(conf).write_text(mosquitto_conf(port) + f"log_dest file {log}\n")
    url = f"mqtt://127.0.0.1:{port}"
    process = await start_process([program, "-c", str(conf)])
    try:
        try:
            await probe_broker(url, attempts=10)
        except BrokerUnavailable as exc:
            await stop_process(process)
            said = await trio.Path(log).read_text() if await trio.Path(log).exists() else ""
            reason = said.strip().splitlines()[-1] if said.strip() else exc.reason
            raise BrokerUnavailable(url, f"mosquitto did not start: {reason}") from exc
        yield url
    finally:
        await stop_process(process)
