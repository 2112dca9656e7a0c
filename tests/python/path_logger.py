"""An ASGI app served by uvicorn that "executes" every request by logging
the path it would route on (uvicorn's decoded ``scope["path"]``, where
``%2F`` is already ``/``) and the raw request target, one JSON line each.

Usage: path_logger.py PORT LOGFILE
"""

import json
import sys

import uvicorn

LOG = open(sys.argv[2], "a", buffering=1)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    LOG.write(
        json.dumps(
            {
                "path": scope["path"],
                "raw": scope.get("raw_path", b"").decode("latin-1"),
                "host": dict(scope["headers"]).get(b"host", b"").decode("latin-1"),
            }
        )
        + "\n"
    )
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"executed":true}'})


uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", lifespan="off")
