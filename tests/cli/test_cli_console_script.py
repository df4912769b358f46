"""The real entry point, in a fresh interpreter: `python -m trioworks.cli`."""

from __future__ import annotations

import json
import subprocess
import sys


def test_python_m_trioworks_cli_dag_run(write):
    path = write(
        """
        from trioworks.dag import WorkflowBuilder

        def double(x):
            return 2 * x

        workflow = WorkflowBuilder()
        workflow.add_node(double, "double")
        inputs = {"x": 21}
        """
    )
    done = subprocess.run(
        [sys.executable, "-m", "trioworks.cli", "dag", "run", str(path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["results"] == {"double": {"result": 42}}

    missing = subprocess.run(
        [sys.executable, "-m", "trioworks.cli", "dag", "run", str(path.with_name("missing.py"))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr == f"error: no such file: {path.with_name('missing.py')}\n"
