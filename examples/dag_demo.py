"""The ETL that ``trioworks demo`` runs, as a workflow file for ``trioworks dag run``.

    trioworks dag run examples/dag_demo.py
    trioworks dag run examples/dag_demo.py --set generate.count=400 --set aggregate.review_threshold=1000
    trioworks dag graph examples/dag_demo.py --format mermaid

The workflow itself lives in the package (``trioworks/demo/etl.py``) so that
``trioworks demo`` works from an installed wheel, and so that worker processes can import
its CPU-bound ``process=True`` node by module name. This file re-exports it: the CLI finds
``build_workflow`` (a function returning the Workflow) and ``resources`` (a function
returning the ResourceRegistry holding the ``db`` SQLite connection).
"""

from trioworks.demo import build_workflow, resources

__all__ = ["build_workflow", "resources"]

if __name__ == "__main__":  # python examples/dag_demo.py: the same run without the CLI
    from trioworks.dag import AsyncLocalRuntime

    result = AsyncLocalRuntime(resource_registry=resources()).execute(build_workflow())
    print(dict(result.summary()), f"{result.total_duration:.2f} s")
    print(result.results["publish"]["result"])
