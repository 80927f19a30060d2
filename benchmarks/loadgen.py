"""A small, cheap HTTP/1.1 load generator: keep-alive connections sending one prepared request, bounded.

Each of `concurrency` connections sends the same request bytes, reads the response by its content-length and
records the latency; the run stops after `requests` responses in all (or `seconds`, whichever comes first).
Pure asyncio streams, so the client costs far less CPU per request than the servers it measures.
"""

import asyncio
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    latencies_ms: list[float]
    wall_s: float
    errors: int
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s else 0.0

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


def request_bytes(path: str, body: bytes, headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
    return "\r\n".join(lines).encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _run(port: int, payload: bytes, concurrency: int, requests: int, seconds: float) -> Result:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    deadline = time.perf_counter() + seconds
    remaining = [requests]

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining[0] > 0 and time.perf_counter() < deadline:
                remaining[0] -= 1
                start = time.perf_counter()
                writer.write(payload)
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append((time.perf_counter() - start) * 1e3)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(latencies, time.perf_counter() - start, errors, statuses)


def run(port: int, payload: bytes, concurrency: int = 1, requests: int = 2000, seconds: float = 30.0) -> Result:
    """Send `requests` copies of `payload` over `concurrency` keep-alive connections to 127.0.0.1:`port`."""
    return asyncio.run(_run(port, payload, concurrency, requests, seconds))
