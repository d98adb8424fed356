"""A stdio MCP server for the agent tests, built with the official `mcp`
package: `lookup_order` answers from a table."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("shop-tools")

ORDERS = {"A-17": {"status": "shipped", "items": 2}}


@server.tool()
def lookup_order(order_id: str) -> dict:
    """Look up an order by its id: status and item count."""
    return {"order_id": order_id, **ORDERS.get(order_id, {"status": "unknown", "items": 0})}


if __name__ == "__main__":
    server.run()
