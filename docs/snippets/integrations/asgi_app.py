import contextlib
import os

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import pqlsdk
from pqlsdk.transports import AsyncHTTPTransport

endpoint = os.environ.get("COLLECTOR_URL", "http://127.0.0.1:8787")
transport = AsyncHTTPTransport(endpoint, "wk_live_1")
client = pqlsdk.Client(store="memory://", rules="playbook.toml", transport=transport)


async def report(request):
    user_id = request.query_params["user"]
    client.track(user_id, "report_created")
    await client.aflush(timeout=2.0)  # batches leave from the event loop
    return JSONResponse({"score": client.score(user_id).score})


@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    await client.aclose(timeout=5.0)  # deliver what is left, then release the store
    await transport.aclose()  # a transport you pass in is yours to close


app = Starlette(routes=[Route("/reports", report, methods=["POST"])], lifespan=lifespan)
