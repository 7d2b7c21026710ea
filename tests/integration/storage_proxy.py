"""A TCP proxy in front of Azurite that can cut the connection under chosen requests.

Used to inject a real storage fault (the client sees "Server disconnected", as under load)
into the durable engine's history writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

_METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"MERGE ", b"HEAD ")


class StorageProxy:
    """``trip(n, *patterns)``: the next ``n`` requests whose bytes hold every pattern are cut."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.tripped = 0
        self._armed = 0
        self._patterns: tuple[bytes, ...] = ()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    def start(self) -> StorageProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        """Close every connection, the listener and the loop (nothing left for the GC to find)."""
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def trip(self, times: int, *patterns: bytes) -> None:
        with self._lock:
            self._armed, self._patterns = times, patterns

    def _should_cut(self, request: bytes) -> bool:
        with self._lock:
            if self._armed > 0 and all(p in request for p in self._patterns):
                self._armed -= 1
                self.tripped += 1
                return True
        return False

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            await self._pipe(reader, writer)
        finally:
            writer.transport.abort()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            return
        self._writers.add(up_writer)

        async def upstream() -> None:
            request = b""
            while data := await reader.read(65536):
                request = data if data.startswith(_METHODS) else request + data
                if self._should_cut(request):
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            with contextlib.suppress(OSError, ConnectionError):
                await asyncio.gather(upstream(), downstream())
        finally:
            up_writer.transport.abort()
            self._writers.discard(up_writer)


@contextlib.contextmanager
def proxying(target_port: int) -> Iterator[StorageProxy]:
    proxy = StorageProxy(target_port).start()
    try:
        yield proxy
    finally:
        proxy.stop()
