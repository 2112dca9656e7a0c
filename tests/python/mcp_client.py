"""An MCP client (official Python SDK) that calls tools through the sidecar
(HTTP_PROXY is set by the test) and prints one JSON line per call.
Usage: mcp_client.py URL"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

CALLS = [
    ("read_file", {"path": "/workspace/notes.md"}),
    ("read_file", {"path": "/etc/passwd"}),
    ("delete_file", {"path": "/workspace/notes.md"}),
    ("add", {"a": 2, "b": 3}),
    ("search", {"query": "x" * 50, "limit": 5}),
]


async def main(url: str) -> None:
    async with streamablehttp_client(url, timeout=10, sse_read_timeout=10) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            print(json.dumps({"tools": sorted(t.name for t in tools.tools)}), flush=True)
            for name, args in CALLS:
                try:
                    result = await session.call_tool(name, args)
                    text = "".join(c.text for c in result.content if c.type == "text")
                    print(json.dumps({"tool": name, "ok": not result.isError, "text": text}), flush=True)
                except McpError as e:
                    print(
                        json.dumps(
                            {
                                "tool": name,
                                "ok": False,
                                "error": e.error.message,
                                "code": e.error.code,
                                "data": e.error.data,
                            }
                        ),
                        flush=True,
                    )


if __name__ == "__main__":
    asyncio.run(asyncio.wait_for(main(sys.argv[1]), timeout=60))
