"""Small raw-ASGI helpers shared by the service's middlewares and the deployer's router."""

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def read_messages(receive: Receive, limit: int | None = None) -> list[Any] | None:
    """Every body message of a request, or None once they add up to more than `limit` bytes."""
    messages, seen = [], 0
    while True:
        message = await receive()
        messages.append(message)
        seen += len(message.get("body", b""))
        if limit is not None and seen > limit:
            return None
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


async def read_body(receive: Receive) -> bytes:
    """The whole request body (its size is bounded by the API-key guard in front of the app)."""
    messages = await read_messages(receive)
    return b"".join(m.get("body", b"") for m in messages or [] if m["type"] == "http.request")


def replay(messages: list[Any], receive: Receive) -> Receive:
    """A receive that hands the app the messages already read, then the live channel (disconnects)."""
    pending = list(messages)

    async def wrapped() -> Any:
        return pending.pop(0) if pending else await receive()

    return wrapped


async def send_json(send: Send, status: int, payload: bytes | dict[str, Any]) -> None:
    """One complete JSON response (`payload` already encoded, or a dict to encode)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
