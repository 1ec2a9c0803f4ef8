"""The load generator's HTTP client: CPU seconds per request of aiohttp (the replay's client,
`serving.loadgen.replay`) against httpx (its client before session 13), in this process.

    python benchmarks/loadgen_client.py [--requests 2000] [--rate 200] [--rounds 2]

Each round sends REQUESTS POSTs shaped like the replay's (`{"prompt", "prompt_id"}`) open loop
at RATE per second to a stub server in another process (aiohttp, answering a t2isim-shaped
JSON body at once), with each client in turn, and reads this process's CPU time (user +
system) around each. The last line is `aiohttp_cpu_ms= httpx_cpu_ms= ratio=` (per request,
best round of each; ratio = aiohttp / httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time

from serving.stack import free_port

STUB = """
import sys
from aiohttp import web

ANSWER = {"t2isim": {"images": [{"status": "done", "reason": None}]}}


async def generations(request):
    await request.json()
    return web.json_response(ANSWER)

app = web.Application()
app.router.add_post("/v1/images/generations", generations)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


async def open_loop(send, n: int, rate: float) -> None:
    """Start `send(i)` at i / rate seconds for i < n, and wait for all."""
    loop = asyncio.get_running_loop()
    t0, tasks = loop.time(), []
    for i in range(n):
        delay = t0 + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(i)))
    await asyncio.gather(*tasks)


async def with_aiohttp(url: str, n: int, rate: float) -> None:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2000)) as client:

        async def send(i: int) -> None:
            async with client.post(url, json={"prompt": "a cat", "prompt_id": i}) as response:
                await response.read()

        await open_loop(send, n, rate)


async def with_httpx(url: str, n: int, rate: float) -> None:
    import httpx

    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(limits=limits) as client:

        async def send(i: int) -> None:
            (await client.post(url, json={"prompt": "a cat", "prompt_id": i})).read()

        await open_loop(send, n, rate)


def wait_listening(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"the stub server did not listen on port {port} in {timeout_s:g} s")
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    stub = subprocess.Popen([sys.executable, "-c", STUB, str(port)])
    best = {"aiohttp": float("inf"), "httpx": float("inf")}
    try:
        wait_listening(port)
        url = f"http://127.0.0.1:{port}/v1/images/generations"
        for _ in range(args.rounds):
            for name, client in (("aiohttp", with_aiohttp), ("httpx", with_httpx)):
                before = time.process_time()
                asyncio.run(client(url, args.requests, args.rate))
                ms = (time.process_time() - before) * 1e3 / args.requests
                best[name] = min(best[name], ms)
                print(f"{name}: {ms:.2f} ms of CPU per request", flush=True)
    finally:
        stub.kill()
        stub.wait()
    aio, httpx = best["aiohttp"], best["httpx"]
    print(f"aiohttp_cpu_ms={aio:.2f} httpx_cpu_ms={httpx:.2f} ratio={aio / httpx:.2f}")


if __name__ == "__main__":
    main()
