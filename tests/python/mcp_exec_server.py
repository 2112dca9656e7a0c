"""An MCP server (official Python SDK, stateless Streamable HTTP answering
in JSON) whose tools record every execution: each call appends one JSON line
({"tool": ..., "arguments": ...}) to LOG, so a test can compare what ran
with what the policy allows. Usage: mcp_exec_server.py PORT LOG"""

import json
import sys

from mcp.server.fastmcp import FastMCP

LOG = sys.argv[2]
server = FastMCP(
    "tollgate-exec-log",
    host="127.0.0.1",
    port=int(sys.argv[1]),
    log_level="WARNING",
    stateless_http=True,
    json_response=True,
)


def record(tool, **arguments):
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"tool": tool, "arguments": arguments}, default=str) + "\n")


@server.tool()
def read_repo(repo: str, n: float = 0) -> str:
    """Read a repository."""
    record("read_repo", repo=repo, n=n)
    return f"read {repo}"


@server.tool()
def delete_repo(repo: str, n: float = 0) -> str:
    """Delete a repository."""
    record("delete_repo", repo=repo, n=n)
    return f"deleted {repo}"


if __name__ == "__main__":
    server.run(transport="streamable-http")
