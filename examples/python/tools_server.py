"""Your own Python functions as MCP tools, for a JamJet workflow.

A stdio MCP server built with the official `mcp` package (PyPI; pinned in
.ci/run). A workflow starts it as a child process and calls its tools:
examples/python-tool.yaml, and docs/migrating-from-openai.md.

    python3 -m venv .venv && .venv/bin/pip install mcp==2.3.0
    PATH="$PWD/.venv/bin:$PATH" jamjet run examples/python-tool.yaml --input '{"order_id": "A-17"}'

In mcp 1.x the class was `FastMCP` (`from mcp.server.fastmcp import FastMCP`);
the decorators are the same.
"""

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("shop-tools")

# Stand-in for your database or internal API.
ORDERS = {
    "A-17": {"status": "shipped", "items": 2, "total": 59.90, "email": "ada@example.com"},
    "B-42": {"status": "delayed", "items": 1, "total": 19.00, "email": "alan@example.com"},
}


@server.tool()
def lookup_order(order_id: str) -> dict:
    """Look up an order by its id: status, item count, total."""
    order = ORDERS.get(order_id)
    if order is None:
        # A ToolError is an error result with this message: the node fails with it.
        # (Any other exception is a crash: the caller sees only "Error executing
        # tool lookup_order", and the traceback goes to stderr, i.e. JamJet's log.)
        raise ToolError(f"no order {order_id!r}")
    return {"order_id": order_id, **order}


@server.tool()
def refund_quote(total: float, reason: str) -> dict:
    """How much would be refunded for an order, and why."""
    share = 1.0 if "broken" in reason.lower() else 0.5
    return {"amount": round(total * share, 2), "share": share}


if __name__ == "__main__":
    server.run()  # stdio: JSON-RPC on stdin/stdout, logs on stderr
