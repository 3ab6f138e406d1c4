#!/usr/bin/env python3
"""A TCP proxy that counts the bytes a server sends its clients.

    benches/count-proxy.py 127.0.0.1:13900

Prints the port it listens on (127.0.0.1), then for every line read on
standard input prints the bytes sent to clients since the last line, and
starts counting again. Used to measure what restic reads from S3.
"""
import asyncio
import sys

downloaded = 0


async def pipe(reader, writer, count):
    global downloaded
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
            if count:
                downloaded += len(data)
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    host, port = sys.argv[1].rsplit(":", 1)

    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(host, int(port))
        except OSError:
            client_w.close()
            return
        await asyncio.gather(pipe(client_r, server_w, False), pipe(server_r, client_w, True))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    global downloaded
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        print(downloaded, flush=True)
        downloaded = 0


asyncio.run(main())
