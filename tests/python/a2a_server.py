"""An A2A agent (a2a-sdk 1.x server) for the sidecar's end-to-end tests: the
JSON-RPC binding at /rpc and the HTTP+JSON binding at /rest (also under a
tenant), both with A2A 0.3 compatibility on. Every operation the agent
executes is appended to LOG as one JSON line ({"op": "execute"|"cancel",
"task": ...}), so a test can compare what ran with what the policy allows.
A sent message leaves its task waiting for input, so it can be cancelled.

Usage: a2a_server.py PORT LOG"""

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentSkill,
    Task,
    TaskState,
    TaskStatus,
)

PORT = int(sys.argv[1])
LOG = sys.argv[2]


def record(op, task):
    with open(LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps({"op": op, "task": task}) + "\n")


class Executor(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        record("execute", context.task_id)
        if context.current_task is None:
            await event_queue.enqueue_event(
                Task(
                    id=context.task_id,
                    context_id=context.context_id,
                    status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                )
            )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.requires_input()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        record("cancel", context.task_id)
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


base = f"http://127.0.0.1:{PORT}"
card = AgentCard(
    name="tollgate-test-agent",
    description="An agent that records what it executes.",
    version="1.0.0",
    supported_interfaces=[
        AgentInterface(url=f"{base}/rpc", protocol_binding="JSONRPC", protocol_version="1.0"),
        AgentInterface(url=f"{base}/rest", protocol_binding="HTTP+JSON", protocol_version="1.0"),
    ],
    capabilities=AgentCapabilities(streaming=False),
    default_input_modes=["text/plain"],
    default_output_modes=["text/plain"],
    skills=[AgentSkill(id="record", name="record", description="Records the request.", tags=["test"])],
)
handler = DefaultRequestHandler(
    agent_executor=Executor(), task_store=InMemoryTaskStore(), agent_card=card
)
routes = [
    *create_agent_card_routes(card),
    *create_jsonrpc_routes(handler, "/rpc", enable_v0_3_compat=True),
    Mount("/rest", routes=create_rest_routes(handler, enable_v0_3_compat=True)),
]
app = Starlette(routes=routes)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
