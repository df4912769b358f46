"""A Kailash workflow ported to trioworks by changing its imports, and nothing else.

    trioworks dag run examples/kailash_port.py
    trioworks dag run examples/kailash_port.py --set filter_large.min_amount=400
    trioworks dag run examples/kailash_port.py --json
    trioworks dag graph examples/kailash_port.py --format mermaid

In Kailash the two imports read::

    from kailash.runtime.async_local import AsyncLocalRuntime
    from kailash.workflow.builder import WorkflowBuilder

Everything below them is Kailash code: node type names, code strings that read their inputs
as variables and set ``result``, ``connect(..., mapping={output_path: input})`` with dotted
paths into a node's output, and a SwitchNode. One thing a port may have to touch besides the
imports: an AsyncPythonCodeNode whose code awaits asyncio (``await asyncio.sleep(...)``)
must await Trio instead (``await trio.sleep(...)``); the code here awaits nothing.

`trioworks dag run` finds the builder in ``workflow`` and builds it.
"""

from trioworks.dag import AsyncLocalRuntime, WorkflowBuilder

workflow = WorkflowBuilder()

workflow.add_node(
    "PythonCodeNode",
    "load_orders",
    {
        "code": """
orders = [
    {"id": 1, "customer": "acme", "amount": 120.0},
    {"id": 2, "customer": "globex", "amount": 480.0},
    {"id": 3, "customer": "acme", "amount": 310.5},
    {"id": 4, "customer": "initech", "amount": 75.25},
    {"id": 5, "customer": "globex", "amount": 260.0},
    {"id": 6, "customer": "umbrella", "amount": 99.0},
]
result = {"orders": orders, "count": len(orders)}
"""
    },
)

workflow.add_node(
    "PythonCodeNode",
    "filter_large",
    {
        "min_amount": 250.0,
        "code": """
large = [order for order in orders if order["amount"] >= min_amount]
result = {"large": large, "flagged": len(large)}
""",
    },
)

workflow.add_node(
    "AsyncPythonCodeNode",
    "summarize",
    {
        "code": """
by_customer = {}
for order in large:
    by_customer[order["customer"]] = by_customer.get(order["customer"], 0) + order["amount"]
result = {"by_customer": by_customer, "total": sum(by_customer.values()), "flagged": flagged}
"""
    },
)

workflow.add_node("SwitchNode", "check", {"condition_field": "flagged", "operator": ">", "value": 2})

workflow.add_node(
    "PythonCodeNode",
    "alert",
    {"code": "result = {\"alert\": f\"{summary['flagged']} large orders, {summary['total']:.2f} in all\"}"},
)
workflow.add_node(
    "PythonCodeNode",
    "report",
    {"code": 'result = {"report": f"{summary[\'flagged\']} large orders: nothing to escalate"}'},
)

workflow.connect("load_orders", "filter_large", mapping={"result.orders": "orders"})
workflow.connect("filter_large", "summarize", mapping={"result.large": "large", "result.flagged": "flagged"})
workflow.connect("summarize", "check", mapping={"result": "input_data"})
workflow.connect("check", "alert", mapping={"true_output": "summary"})
workflow.connect("check", "report", mapping={"false_output": "summary"})


if __name__ == "__main__":  # python examples/kailash_port.py: Kailash's way of running it
    runtime = AsyncLocalRuntime()
    result = runtime.execute(workflow.build())
    print(result["results"]["summarize"])
    print(result["results"].get("alert") or result["results"].get("report"))
