"""An MCP server (official Python SDK, Streamable HTTP) with a few tools, for
the sidecar's end-to-end tests. Usage: mcp_server.py PORT"""

import sys

from mcp.server.fastmcp import FastMCP

server = FastMCP("tollgate-test-tools", host="127.0.0.1", port=int(sys.argv[1]), log_level="WARNING")


@server.tool()
def read_file(path: str) -> str:
    """Read a file (returns a made-up content naming the path)."""
    return f"contents of {path}"


@server.tool()
def delete_file(path: str) -> str:
    """Delete a file."""
    return f"deleted {path}"


@server.tool()
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@server.tool()
def search(query: str, limit: int = 10) -> str:
    """Search for something."""
    return f"{limit} results for {query}"


if __name__ == "__main__":
    server.run(transport="streamable-http")
