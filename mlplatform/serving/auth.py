"""The guard in front of the service: API keys (constant-time), JSON bodies only, and the request body size limit."""

import hmac

from mlplatform.serving.asgi import ASGIApp, Receive, Scope, Send, read_messages, replay, send_json

MAX_BODY_BYTES = 1_000_000
OPEN_PATHS = ("/livez", "/readyz", "/metrics", "/docs", "/docs.json")
API_KEY_HEADER = "x-api-key"


def key_matches(given: str | None, keys: list[bytes]) -> bool:
    """Constant-time comparison against every configured key (no early exit on the first match)."""
    if not given:
        return False
    candidate, found = given.encode(), False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


def json_content(content_type: bytes | None) -> bool:
    """A request body the APIs read: JSON, or no content type at all (the body is parsed as JSON either way)."""
    if not content_type:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class Guard:
    """ASGI middleware: API key check, JSON-only bodies (415 otherwise) and the request body size limit; health and
    metrics stay open."""

    def __init__(self, app: ASGIApp, keys: list[bytes], required: bool, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.keys, self.required, self.max_body = app, keys, required, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.required and not key_matches(headers.get(API_KEY_HEADER.encode(), b"").decode() or None, self.keys):
            return await send_json(send, 401, {"error": f"missing or invalid API key (header {API_KEY_HEADER})"})
        if scope.get("method") == "POST" and not json_content(headers.get(b"content-type")):
            given = headers[b"content-type"].decode(errors="replace")[:100]
            return await send_json(send, 415, {"error": f"content-type {given!r} is not accepted: send the body as "
                                                        "JSON with content-type application/json"})
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await send_json(send, 413, {"error": f"request body of {int(length)} bytes exceeds the limit of "
                                                        f"{self.max_body}"})
        if length is None:  # chunked: read up to the limit here, so an oversized body is a 413, not an app error
            messages = await read_messages(receive, self.max_body)
            if messages is None:
                return await send_json(send, 413, {"error": f"request body exceeds the limit of {self.max_body} bytes"})
            receive = replay(messages, receive)
        return await self.app(scope, receive, send)
