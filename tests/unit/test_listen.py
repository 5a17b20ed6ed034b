"""The listening socket ``releasebot run`` takes before it starts: connections accepted on it
have Nagle's algorithm off, so a response written in two parts (uvicorn writes the head, then
the body) is not held back until the client's delayed ACK (~40 ms per keep-alive request)."""

from __future__ import annotations

import asyncio
import socket

from bot.serve import listen


def test_accepted_connections_have_tcp_nodelay() -> None:
    async def scenario() -> int:
        sock = listen("127.0.0.1", 0, "PORT")
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn: socket.socket = writer.get_extra_info("socket")
            seen.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            try:
                return await asyncio.wait_for(seen, 5)
            finally:
                writer.close()

    assert asyncio.run(scenario()) != 0
