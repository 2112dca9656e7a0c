"""An A2A client (a2a-sdk 1.x) for the sidecar's end-to-end tests: resolves
the agent card at URL, then over BINDING (JSONRPC or HTTP+JSON) sends a
message, reads the task back, lists tasks and tries to cancel the task.
Prints one JSON line per step: {"step", "ok", ...} with the error text when
the step failed. Proxy settings come from the environment (HTTP_PROXY).

Usage: a2a_client.py URL BINDING"""

import asyncio
import json
import sys
import uuid

import httpx

from a2a.client import ClientConfig, create_client
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
)


def emit(step, ok, **fields):
    print(json.dumps({"step": step, "ok": ok, **fields}), flush=True)


async def main(url, binding):
    async with httpx.AsyncClient(timeout=20) as http:
        config = ClientConfig(
            streaming=False, httpx_client=http, supported_protocol_bindings=[binding]
        )
        client = await create_client(url, client_config=config)
        message = Message(
            role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=[Part(text="plan")]
        )
        task_id = None
        try:
            async for event in client.send_message(SendMessageRequest(message=message)):
                if event.HasField("task"):
                    task_id = event.task.id
            emit("send", task_id is not None, task=task_id)
        except Exception as e:  # noqa: BLE001 - the test reads the text
            emit("send", False, error=str(e))
            return
        for step, call in [
            ("get", lambda: client.get_task(GetTaskRequest(id=task_id))),
            ("list", lambda: client.list_tasks(ListTasksRequest())),
            ("cancel", lambda: client.cancel_task(CancelTaskRequest(id=task_id))),
        ]:
            try:
                await call()
                emit(step, True)
            except Exception as e:  # noqa: BLE001 - the test reads the text
                emit(step, False, error=f"{type(e).__name__}: {e}")
        await client.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
