"""A webhook receiver that verifies the signature and handles each webhook once.

What the customers of a report service can copy. Give it the signing secret the service shares
with them and run it:

    WEBHOOK_SECRET=whsec_... uvicorn contrib.receiving_example:app --port 9000

With FastAPI the endpoint is the same function: ``app.post("/hooks/reports")(reports)``.
"""

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hybiscus_webhooks.receiving import ReceivedWebhook, WebhookVerifier

# Several processes should share their memory of ids: pass duplicates=RedisDuplicates(redis_client).
verifier = WebhookVerifier([os.environ["WEBHOOK_SECRET"]])
handled: list[ReceivedWebhook] = []


async def reports(request: Request) -> Response:
    async with verifier.receive(request) as webhook:
        if not webhook.duplicate:
            # Fetch webhook.url here, with your API key; raising makes the service try again later.
            handled.append(webhook)
    return Response(status_code=204)


app = Starlette(routes=[Route("/hooks/reports", reports, methods=["POST"])])
