"""``python -m bench.hang PORT ...``: a server that accepts and reads but never answers."""

from __future__ import annotations

import asyncio
import signal
import sys


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Read and drop whatever comes until the client gives up and closes.
    try:
        while await reader.read(65536):
            pass
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(ports: list[int]) -> None:
    servers = [await asyncio.start_server(_hold, "127.0.0.1", port, backlog=4096) for port in ports]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    asyncio.run(main([int(port) for port in sys.argv[1:]]))
