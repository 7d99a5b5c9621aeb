"""Run by .venv-mcp's Python (tests/embedded/test_mcp_analyst.py): an MCP client session with
mcp-clickhouse over stdio, calling each tool; prints one JSON line per call."""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(calls):
    server = StdioServerParameters(command=os.path.join(os.path.dirname(sys.executable), "mcp-clickhouse"),
                                   args=[], env=dict(os.environ))
    async with stdio_client(server) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            tools = [t.name for t in (await s.list_tools()).tools]
            print(json.dumps({"tools": tools}), flush=True)
            for name, args in calls:
                res = await s.call_tool(name, args)
                text = " ".join(getattr(c, "text", "") for c in res.content)
                print(json.dumps({"tool": name, "args": args, "error": bool(getattr(res, "is_error", getattr(res, "isError", False))), "text": text}), flush=True)


asyncio.run(main(json.loads(sys.argv[1])))
