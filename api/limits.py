"""The request body size limit, enforced before a body is parsed (413 with the limit in the message)."""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_response


def too_large_message(limit: int, setting: str) -> str:
    return f"request body is larger than the limit of {limit} bytes (setting {setting}); send less per request"


class BodySizeLimit:
    """Rejects a declared Content-Length over the limit at once, and a streamed body once it passes it.

    ``limit`` (``GRADER_MAX_BODY_BYTES``) applies everywhere except under ``upload_prefix``, where
    answer files are uploaded and ``upload_limit`` (``GRADER_MAX_UPLOAD_BYTES``) applies.
    """

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int, upload_prefix: str = "/v1/jobs") -> None:
        self.app = app
        self.limits = (limit, "GRADER_MAX_BODY_BYTES"), (upload_limit, "GRADER_MAX_UPLOAD_BYTES")
        self.upload_prefix = upload_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self.limits[scope["path"].startswith(self.upload_prefix)]
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = error_response(413, "payload_too_large", too_large_message(limit, setting))
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPExceptions from body reading; the error handler makes it JSON.
                    raise HTTPException(413, too_large_message(limit, setting))
            return message

        await self.app(scope, limited_receive, send)
