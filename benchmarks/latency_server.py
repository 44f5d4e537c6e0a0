"""A local HTTP API that answers every call after a fixed latency, for benchmarks/fanout.py.

    .venv/bin/python benchmarks/latency_server.py --port 8025 --latency-ms 50 [--throttle-fraction 0.1]

It plays a provider: `POST /email` answers like Postmark's send API (so django-anymail's Postmark backend
can talk to it with POSTMARK_API_URL), any other POST answers `{"ok": true}` (the HTTP request step).
Requests are counted, with the distinct Rowbell keys they carry (`Idempotency-Key`, or `X-Rowbell-Key` in
Postmark's Headers) to catch a message sent twice; `GET /stats` returns the counts and the most requests
it had in flight, `POST /reset` zeroes them. `--throttle-fraction F` answers a random fraction F of the
calls HTTP 429 with `Retry-After: 1` (Postmark's words), which deliver nothing; `/stats` then also says
how many, how many keys were accepted more than once (`duplicates`), and the most calls that arrived in
any 1 s window (`max_per_second`, for benchmarks/rate_limit.py). One asyncio process (keep-alive aware), bound to 127.0.0.1,
so that it serves hundreds of calls in flight with little CPU; it runs in its own process so that its
work does not share a GIL with the client being measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import time
import uuid

KEY = re.compile(rb"rowbell-[0-9a-f]{32}")


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self.keys: set[bytes] = set()
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []
        self.throttled = 0
        self.accepted: dict[bytes, int] = {}

    def max_per_second(self) -> int:
        """The most calls that arrived within any 1 s window (two pointers over the sorted arrivals)."""
        times, most, start = sorted(self.arrivals), 0, 0
        for end, at in enumerate(times):
            while at - times[start] >= 1.0:
                start += 1
            most = max(most, end - start + 1)
        return most

    def as_json(self) -> dict:
        return {
            "count": self.count,
            "unique": len(self.keys),
            "max_in_flight": self.max_in_flight,
            "throttled": self.throttled,
            "duplicates": sum(n - 1 for n in self.accepted.values() if n > 1),
            "max_per_second": self.max_per_second(),
        }


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _version = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length") or 0))
    return method, path, headers, body


def respond(writer: asyncio.StreamWriter, payload: dict, keep_alive: bool, status: str = "200 OK") -> None:
    body = json.dumps(payload).encode()
    extra = "Retry-After: 1\r\n" if status.startswith("429") else ""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
        f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    writer.write(head.encode() + body)


def answer(path: str, body: bytes) -> dict:
    if path.rstrip("/").endswith("/email"):  # Postmark's answer to one message
        to = json.loads(body or b"{}").get("To", "")
        return {"To": to, "SubmittedAt": "2026-03-02T09:00:00Z", "MessageID": str(uuid.uuid4()),
                "ErrorCode": 0, "Message": "OK"}  # fmt: skip
    return {"ok": True}


THROTTLED = {"ErrorCode": 429, "Message": "Rate limit exceeded"}


def serve(stats: Stats, latency: float, throttle_fraction: float = 0.0):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_request(reader)) is not None:
                _method, path, headers, body = request
                keep_alive = headers.get("connection", "").lower() != "close"
                if path == "/stats":
                    respond(writer, stats.as_json(), keep_alive)
                elif path == "/reset":
                    stats.reset()
                    respond(writer, {"ok": True}, keep_alive)
                else:
                    stats.in_flight += 1
                    stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
                    stats.arrivals.append(time.monotonic())
                    await asyncio.sleep(latency)
                    stats.in_flight -= 1
                    stats.count += 1
                    key = headers.get("idempotency-key", "").encode() or _key_in(body)
                    if throttle_fraction and random.random() < throttle_fraction:
                        stats.throttled += 1
                        respond(writer, THROTTLED, keep_alive, "429 Too Many Requests")
                    else:
                        if key:
                            stats.keys.add(key)
                            stats.accepted[key] = stats.accepted.get(key, 0) + 1
                        respond(writer, answer(path, body), keep_alive)
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    return handle


def _key_in(body: bytes) -> bytes:
    found = KEY.search(body)
    return found.group(0) if found else b""


async def main(port: int, latency: float, throttle_fraction: float = 0.0) -> None:
    handler = serve(Stats(), latency, throttle_fraction)
    server = await asyncio.start_server(handler, "127.0.0.1", port, backlog=1024)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--throttle-fraction", type=float, default=0.0)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.latency_ms / 1000, args.throttle_fraction))
