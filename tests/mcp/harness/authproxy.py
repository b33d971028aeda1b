"""A loopback HTTP proxy that adds a bearer token to every request, for the conformance suite.

The conformance runner speaks to a server URL and has no option to send credentials, while
Switchboard refuses every unauthenticated request. This proxy forwards each request unchanged
(method, path, Host, Origin, every MCP header, the body, streamed responses) and only adds
`Authorization: Bearer <token>` when the request has none. Each connection carries one request
(`Connection: close` upstream), so no HTTP framing has to be parsed beyond the request head.

    python -m harness.authproxy --listen 127.0.0.1:P --upstream 127.0.0.1:Q --token-file F
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"upgrade"}


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.write_eof()


async def handle(
    client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, upstream: tuple[str, int], token: bytes
) -> None:
    up_w = None
    try:
        try:
            head = await client_r.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        lines = head[:-4].split(b"\r\n")
        out = [lines[0]]
        has_auth = False
        for line in lines[1:]:
            name = line.split(b":", 1)[0].strip().lower()
            if name in HOP_BY_HOP:
                continue
            if name == b"authorization":
                has_auth = True
            out.append(line)
        if not has_auth:
            out.append(b"Authorization: Bearer " + token)
        out.append(b"Connection: close")
        up_r, up_w = await asyncio.open_connection(*upstream)
        up_w.write(b"\r\n".join(out) + b"\r\n\r\n")
        await up_w.drain()
        to_upstream = asyncio.create_task(pipe(client_r, up_w))
        await pipe(up_r, client_w)
        to_upstream.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await to_upstream
    except ConnectionError:
        pass
    finally:
        for w in (client_w, up_w):
            if w is not None:
                with contextlib.suppress(Exception):
                    w.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--token-file", required=True)
    args = ap.parse_args()
    lhost, lport = args.listen.rsplit(":", 1)
    uhost, uport = args.upstream.rsplit(":", 1)
    with open(args.token_file, "rb") as f:
        token = f.read().strip()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, (uhost, int(uport)), token), lhost, int(lport), limit=1 << 20
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
