"""``camhub.devices.DevicePoolTransport``, camhub's HTTP/1.1 transport, against scripted servers.

Each server here is a real TCP (or TLS) listener on 127.0.0.1 that reads real requests and
writes exactly the bytes a test chooses: framings, keep-alive, broken and hostile answers.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from camhub.devices import MAX_HEAD, ClientPool

Handler = Callable[["Peer", int], Awaitable[None]]


class Peer:
    """One accepted connection: read a request, write raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self) -> tuple[bytes, bytes] | None:
        """The next request's head and body, or None when the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return head, await self.reader.readexactly(length)

    async def send(self, *parts: bytes, pause: float = 0.0) -> None:
        for part in parts:
            self.writer.write(part)
            await self.writer.drain()
            if pause:
                await asyncio.sleep(pause)


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            await self.handler(Peer(reader, writer), self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def serve(handler: Handler, context: ssl.SSLContext | None = None) -> AsyncIterator[tuple[str, Server]]:
    server = Server(handler)
    listener = await asyncio.start_server(server.accept, "127.0.0.1", 0, ssl=context)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}", server
    finally:
        listener.close()
        for writer in server.writers:  # from Python 3.12.1 on, wait_closed() waits for them
            writer.close()
        await listener.wait_closed()


def answering(*answers: bytes) -> Handler:
    """A handler that answers each request on a connection with the next of ``answers``."""

    async def handler(peer: Peer, number: int) -> None:
        for answer in answers:
            if await peer.request() is None:
                return
            await peer.send(answer)
        await peer.request()

    return handler


def ok(body: bytes = b"ok", *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(extra), body)


def test_a_kept_alive_connection_serves_one_request_after_another() -> None:
    async def scenario() -> None:
        async with ClientPool() as pool, serve(answering(ok(b"one"), ok(b"two"), ok(b""))) as (url, server):
            client = pool.client()
            assert [(await client.get(f"{url}/{n}")).content for n in range(3)] == [b"one", b"two", b""]
            assert server.connections == 1

    asyncio.run(scenario())


def test_bodies_by_every_framing_arrive_whole() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5;name=value\r\nhello\r\n",
        b"1\r\n \r\n6\r\nwor",
        b"ld!\r\n0\r\nX-Trailer: yes\r\n\r\n",
    )

    async def handler(peer: Peer, number: int) -> None:
        await peer.request()
        await peer.send(*chunked, pause=0.02)  # framing split across segments
        await peer.request()
        # Bare LF line ends and a folded header, as some firmware sends them.
        await peer.send(b"HTTP/1.1 200 OK\nContent-Length: 2\nX-Folded: a\n b\n\nlf")
        await peer.request()
        await peer.send(b"HTTP/1.0 200 OK\r\n\r\nuntil ", b"the end", pause=0.02)

    async def scenario() -> None:
        async with ClientPool() as pool, serve(handler) as (url, server):
            client = pool.client()
            assert (await client.get(url)).content == b"hello world!"
            folded = await client.get(url)  # the same connection: the chunked body was read to its end
            assert (folded.content, folded.headers["x-folded"]) == (b"lf", "a b")
            assert (await client.get(url)).content == b"until the end"
            assert server.connections == 1
            assert (await client.get(url)).status_code == 200  # a new connection: the last one ended
            assert server.connections == 2

    asyncio.run(scenario())


def test_interim_and_bodiless_answers() -> None:
    answers = (
        b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",  # to HEAD: no body follows
        b"HTTP/1.1 204 No Content\r\n\r\n",
        ok(b"last", b"Connection: close\r\n"),
    )

    async def scenario() -> None:
        async with ClientPool() as pool, serve(answering(*answers)) as (url, server):
            client = pool.client()
            assert (await client.get(url)).content == b"after"
            assert (await client.head(url)).headers["content-length"] == "1000"
            assert (await client.get(url)).status_code == 204
            assert (await client.get(url)).content == b"last"
            assert server.connections == 1
            assert (await client.get(url)).content == b"after"
            assert server.connections == 2  # the device said close

    asyncio.run(scenario())


@pytest.mark.parametrize(("method", "retried"), [("GET", True), ("POST", False)])
def test_a_kept_alive_connection_closed_under_a_request(method: str, retried: bool) -> None:
    """The device closes a reused connection without answering: an idempotent request is sent
    once more on a new connection; a POST is not (the device may have acted on it)."""
    requests = 0

    async def handler(peer: Peer, number: int) -> None:
        nonlocal requests
        while await peer.request() is not None:
            requests += 1
            if number == 1 and requests == 2:
                return  # read the second request, answer nothing, close
            await peer.send(ok())

    async def scenario() -> None:
        async with ClientPool() as pool, serve(handler) as (url, server):
            client = pool.client()
            assert (await client.request(method, url, content=b"x")).content == b"ok"
            if retried:
                assert (await client.request(method, url, content=b"x")).content == b"ok"
                assert (requests, server.connections) == (3, 2)
            else:
                with pytest.raises(httpx.RemoteProtocolError, match="without sending an answer"):
                    await client.request(method, url, content=b"x")
                assert (requests, server.connections) == (2, 1)

    asyncio.run(scenario())


def test_the_retry_goes_on_a_new_connection_when_every_kept_alive_one_was_closed() -> None:
    """A device's keep-alive timeout closes all its idle connections at once: the retry must not
    be spent on another of them."""

    async def handler(peer: Peer, number: int) -> None:
        if number <= 2:
            await peer.request()
            await peer.send(ok(b"first"))
            await peer.request()  # then closes, unanswered, when reused
            return
        while await peer.request() is not None:
            await peer.send(ok(b"fresh"))

    async def scenario() -> None:
        async with ClientPool() as pool, serve(handler) as (url, server):
            client = pool.client()
            assert [r.content for r in await asyncio.gather(client.get(url), client.get(url))] == [
                b"first"
            ] * 2
            assert (await client.get(url)).content == b"fresh"
            assert server.connections == 3

    asyncio.run(scenario())


def test_a_request_waiting_for_a_busy_device_gets_its_turn_or_its_pool_timeout() -> None:
    """With one connection per device, a request waiting behind a busy one is served next, not
    after every request the busy one sends on; the pool timeout bounds the whole wait."""
    order: list[bytes] = []

    async def handler(peer: Peer, number: int) -> None:
        while (request := await peer.request()) is not None:
            order.append(request[0].split(b" ")[1])
            await asyncio.sleep(0.05)
            await peer.send(ok())

    async def scenario() -> None:
        async with ClientPool(connections_per_device=1) as pool, serve(handler) as (url, _):
            client = pool.client()

            async def busy() -> None:
                for n in range(8):
                    await client.get(f"{url}/busy{n}")

            running = asyncio.create_task(busy())
            while not order:
                await asyncio.sleep(0.01)
            assert (await client.get(f"{url}/waiting")).status_code == 200
            await running
            assert order.index(b"/waiting") <= 2, order  # not starved until the busy loop ended
            # A wait that cannot end in time ends in PoolTimeout, however the device's connection
            # goes round meanwhile.
            running = asyncio.create_task(busy())
            while len(order) < 10:
                await asyncio.sleep(0.01)
            with pytest.raises(httpx.PoolTimeout):
                await client.get(f"{url}/late", timeout=httpx.Timeout(5.0, pool=0.0001))
            await running

    asyncio.run(scenario())


def test_idle_connections_close_when_their_keep_alive_ends_and_all_close_with_the_pool() -> None:
    """A device no longer asked keeps no socket open; closing the pool also ends an event stream."""
    closed: list[int] = []

    async def handler(peer: Peer, number: int) -> None:
        await peer.request()
        if number == 1:
            await peer.send(ok())
        else:  # an event stream: headers, a first part, then nothing for as long as it lasts
            await peer.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await peer.request()  # returns when the client closes the connection
        closed.append(number)

    async def scenario() -> None:
        pool = ClientPool(keepalive_expiry=0.2)
        async with serve(handler) as (url, _):
            client = pool.client()
            assert (await client.get(url)).content == b"ok"
            async with asyncio.timeout(10):
                while closed != [1]:  # expired with no further request to the device
                    await asyncio.sleep(0.05)
            async with client.stream("GET", url) as stream:
                assert await anext(stream.aiter_raw()) == b"first"
                await pool.aclose()
                async with asyncio.timeout(10):
                    while closed != [1, 2]:
                        await asyncio.sleep(0.05)
            with pytest.raises(RuntimeError):  # httpx: the client is closed
                await client.get(url)

    asyncio.run(scenario())


def test_a_new_connection_closed_without_an_answer_is_not_retried() -> None:
    async def handler(peer: Peer, number: int) -> None:
        await peer.request()

    async def scenario() -> None:
        async with ClientPool() as pool, serve(handler) as (url, server):
            with pytest.raises(httpx.RemoteProtocolError):
                await pool.client().get(url)
            assert server.connections == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n", httpx.RemoteProtocolError, "exceed"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * MAX_HEAD, httpx.RemoteProtocolError, "exceed"),
        (b"SIP/2.0 200 OK\r\n\r\n", httpx.RemoteProtocolError, "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n", httpx.RemoteProtocolError, "malformed header"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", httpx.RemoteProtocolError, "Content-Length"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            httpx.RemoteProtocolError,
            "Transfer-Encoding",
        ),
        (  # framed as chunked, but the body would reach the adapter still gzip-coded
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            httpx.RemoteProtocolError,
            "Transfer-Encoding",
        ),
        (b"\r\n" * 5000 + ok(), httpx.RemoteProtocolError, "line ends before an answer"),
        (b"HTTP/1.1 100 Continue\r\n\r\n" * 9 + ok(), httpx.RemoteProtocolError, "interim answers"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort", httpx.RemoteProtocolError, "5 of 100 bytes"),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            httpx.RemoteProtocolError,
            "chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n",
            httpx.RemoteProtocolError,
            "longer",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc",
            httpx.RemoteProtocolError,
            "chunk",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 10000,
            httpx.RemoteProtocolError,
            "line",
        ),
        (b"HTTP/1.1 200 OK\r\nContent-Le", httpx.RemoteProtocolError, "inside the answer's headers"),
    ],
)
def test_broken_and_hostile_answers_are_protocol_errors(
    answer: bytes, error: type[Exception], message: str
) -> None:
    async def handler(peer: Peer, number: int) -> None:
        await peer.request()
        await peer.send(answer)

    async def scenario() -> None:
        async with ClientPool() as pool, serve(handler) as (url, _):
            with pytest.raises(error, match=message):
                await pool.client().get(url)

    asyncio.run(scenario())


def test_timeouts_are_httpx_timeouts() -> None:
    async def handler(peer: Peer, number: int) -> None:
        head = await peer.request()
        if head is not None and b"/body" in head[0]:
            await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
        await asyncio.sleep(5)

    async def deaf(peer: Peer, number: int) -> None:
        await asyncio.sleep(5)  # reads nothing: the client's send buffer fills

    async def scenario() -> None:
        async with ClientPool() as pool, serve(handler) as (url, _):
            client = pool.client()
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"{url}/head", timeout=httpx.Timeout(5.0, read=0.2))
            with pytest.raises(httpx.ReadTimeout):
                await client.get(f"{url}/body", timeout=httpx.Timeout(5.0, read=0.2))
        async with ClientPool() as pool, serve(deaf) as (url, _):
            with pytest.raises(httpx.WriteTimeout):
                await pool.client().post(
                    url, content=b"x" * 64 * 2**20, timeout=httpx.Timeout(5.0, write=0.2)
                )
        async with ClientPool() as pool:
            with pytest.raises(httpx.ConnectError):
                await pool.client().get(url)  # nobody listens there any more

    asyncio.run(scenario())


def test_an_abandoned_answer_frees_its_connection() -> None:
    async def handler(peer: Peer, number: int) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"a" * 1000)
        await peer.request()  # the client closes this connection: never asked again

    async def scenario() -> None:
        async with ClientPool(connections_per_device=1) as pool, serve(handler) as (url, server):
            client = pool.client()
            for _ in range(2):
                async with client.stream("GET", url) as response:
                    async for _ in response.aiter_raw():
                        break
            assert server.connections == 2

    asyncio.run(scenario())


def test_requests_cancelled_while_waiting_or_reading_free_their_connection() -> None:
    """A caller's deadline (``asyncio.timeout``, as ``DeviceHTTP`` uses) may cancel a request
    while it waits for the device's one connection or for the answer: the slot must come back."""
    release = asyncio.Event()

    async def handler(peer: Peer, number: int) -> None:
        while (request := await peer.request()) is not None:
            if b"/hold" in request[0]:  # the head at once, the body when released
                await peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
                await release.wait()
                await peer.send(b"ok")
            else:
                await peer.send(ok())

    async def scenario() -> None:
        async with ClientPool(connections_per_device=1) as pool, serve(handler) as (url, server):
            client = pool.client()
            async with client.stream("GET", f"{url}/hold") as held:  # the one connection
                for _ in range(3):
                    with pytest.raises(TimeoutError):
                        async with asyncio.timeout(0.1):
                            await client.get(f"{url}/queued")  # waits for the connection
                release.set()
                await held.aread()
            release.clear()
            for _ in range(3):
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.1):
                        await client.get(f"{url}/hold")  # cancelled while reading the answer
                release.set()
                release.clear()
            assert (await client.get(f"{url}/after", timeout=2.0)).content == b"ok"
            assert server.connections == 4  # an answer cut short is never read on from

    asyncio.run(scenario())


def test_a_line_break_smuggled_into_a_header_is_refused() -> None:
    async def scenario() -> None:
        async with ClientPool() as pool, serve(answering(ok())) as (url, server):
            with pytest.raises(httpx.LocalProtocolError):
                await pool.client().get(url, headers={"X-Name": "a\r\nInjected: yes"})
            assert server.connections == 0

    asyncio.run(scenario())


def test_a_streamed_request_body_is_sent_chunked() -> None:
    received: list[bytes] = []

    async def handler(peer: Peer, number: int) -> None:
        received.append(await peer.reader.readuntil(b"0\r\n\r\n"))
        await peer.send(ok())

    async def parts() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b"defg"

    async def scenario() -> None:
        async with ClientPool() as pool, serve(handler) as (url, _):
            assert (await pool.client().post(url, content=parts())).content == b"ok"
            assert b"Transfer-Encoding: chunked" in received[0]
            assert received[0].endswith(b"\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")

    asyncio.run(scenario())


def test_https_with_and_without_certificate_checks(tmp_path: Path) -> None:
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    command = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout KEY -out CERT"
    arguments = [{"KEY": str(key), "CERT": str(certificate)}.get(word, word) for word in command.split()]
    subprocess.run(arguments, check=True, capture_output=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)

    async def scenario() -> None:
        async with (
            ClientPool() as pool,
            serve(answering(ok(b"secret"), ok(b"again")), context) as (url, server),
        ):
            insecure = pool.client(verify=False)
            assert (await insecure.get(url)).content == b"secret"
            assert (await insecure.get(url)).content == b"again"
            assert server.connections == 1
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await pool.client(verify=True).get(url)

    asyncio.run(scenario())
