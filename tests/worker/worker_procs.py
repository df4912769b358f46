"""Process activities for the tests: module level, so worker processes can import them."""

from __future__ import annotations

import os
import socket
import time

from trioworks.worker import ActivityResult, activity


@activity(process=True)
def square(params: dict) -> ActivityResult:
    return ActivityResult.values(result=params["x"] ** 2, pid=os.getpid())


@activity(process=True)
def spin(params: dict) -> ActivityResult:
    time.sleep(params["seconds"])
    return ActivityResult.value("done", True)


@activity(process=True)
def spin_reporting(params: dict) -> ActivityResult:
    """``spin`` that first tells the test it is running by connecting to ``params["port"]``."""
    with socket.create_connection(("127.0.0.1", params["port"])):
        pass
    time.sleep(params["seconds"])
    return ActivityResult.value("done", True)


@activity(process=True)
def crash(params: dict) -> ActivityResult:
    os._exit(3)
