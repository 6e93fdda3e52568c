"""MLLP framing (HL7 v2 Implementation Guide, Appendix C): 0x0B, the message, 0x1C 0x0D.

``FrameReader`` splits a byte stream into frames and is tested without sockets; ``serve``
runs it on asyncio streams. Each connection may carry many messages, one after another, each
answered before the next is read (senders wait for the ACK); many connections are served at
once, their messages handled in a thread pool because the services use Django's ORM.
"""

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("integrations.hl7")

START = b"\x0b"
END = b"\x1c\x0d"
# Line ends some senders put between frames: tolerated. Anything else outside a frame is not
# HL7, and the connection is closed (there is no message to acknowledge).
BETWEEN = b"\r\n\t "


@dataclass
class Frame:
    data: bytes = b""
    oversize: int = 0  # bytes beyond the limit that were dropped (the frame is refused)


class Garbage(Exception):
    """Bytes outside a frame that are not line ends."""


class FrameReader:
    """Feed bytes in as they arrive; take whole frames out.

    A frame longer than ``max_size`` is not kept whole: its first ``keep`` bytes are (enough to
    answer with an ACK naming its MSH), the rest is counted and dropped, so a huge or endless
    message cannot exhaust memory.
    """

    def __init__(self, max_size: int, keep: int = 4096) -> None:
        self.max_size = max_size
        self.keep = keep
        self.buffer = bytearray()
        self.in_frame = False
        self.dropped = 0
        self.scanned = 0  # how far the current frame has been searched for its end

    def feed(self, data: bytes) -> list[Frame]:
        """Returns the frames completed by ``data``; raises Garbage for bytes between frames."""
        self.buffer += data
        frames: list[Frame] = []
        while True:
            if not self.in_frame:
                start = self.buffer.find(START)
                outside = bytes(self.buffer if start < 0 else self.buffer[:start])
                if outside.strip(BETWEEN):
                    raise Garbage(outside[:40])
                if start < 0:
                    self.buffer.clear()
                    return frames
                del self.buffer[: start + 1]
                self.in_frame, self.dropped, self.scanned = True, 0, 0
            end = self.buffer.find(END, max(self.scanned - 1, 0))
            if end < 0:
                self._limit()
                self.scanned = len(self.buffer)
                return frames
            if self.dropped:
                frames.append(Frame(bytes(self.buffer[: min(end, self.keep)]), oversize=self.dropped + end))
            elif end > self.max_size:
                frames.append(Frame(bytes(self.buffer[: self.keep]), oversize=end))
            else:
                frames.append(Frame(bytes(self.buffer[:end])))
            del self.buffer[: end + len(END)]
            self.in_frame = False

    def _limit(self) -> None:
        """Inside an unfinished frame: keep only the head of one that is over the limit."""
        if len(self.buffer) <= self.max_size:
            return
        # Keep the head and the last byte (0x1C may be followed by 0x0D in the next read).
        self.dropped += len(self.buffer) - self.keep - 1
        del self.buffer[self.keep : len(self.buffer) - 1]

    @property
    def pending(self) -> int:
        """Bytes of an unfinished frame (a connection closed with this > 0 cut a message)."""
        return len(self.buffer) if self.in_frame else 0


def frame(message: bytes) -> bytes:
    return START + message + END


# handle(frame, peer) -> the ACK's bytes
Handle = Callable[[Frame, str], bytes]


async def _connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handle: Handle,
    max_size: int,
    read_size: int = 65536,
) -> None:
    peer = writer.get_extra_info("peername")
    peer_text = f"{peer[0]}:{peer[1]}" if peer else "?"
    frames = FrameReader(max_size)
    loop = asyncio.get_running_loop()
    log.info("HL7 connection from %s", peer_text)
    try:
        while True:
            data = await reader.read(read_size)
            if not data:
                if frames.pending:
                    log.warning(
                        "HL7 connection from %s closed inside a message (%d bytes dropped)",
                        peer_text,
                        frames.pending,
                    )
                break
            for item in frames.feed(data):
                ack = await loop.run_in_executor(None, handle, item, peer_text)
                writer.write(frame(ack))
                await writer.drain()
    except Garbage as garbage:
        log.warning("HL7 connection from %s closed: not MLLP (%r)", peer_text, garbage.args[0])
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        log.info("HL7 connection from %s lost: %s", peer_text, error)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, ssl.SSLError):
            pass


async def serve(
    *,
    host: str,
    port: int,
    handle: Handle,
    max_size: int,
    ssl_context: ssl.SSLContext | None = None,
    started: Callable[[asyncio.Server], object] | None = None,
    stop: asyncio.Event,
) -> None:
    """Serve MLLP until ``stop`` (an asyncio.Event) is set; ``handle(frame, peer) -> ack bytes``
    runs in the default thread pool. ``started(server)`` is called once listening."""
    server = await asyncio.start_server(
        lambda r, w: _connection(r, w, handle, max_size), host, port, ssl=ssl_context, reuse_address=True
    )
    if started:
        started(server)
    async with server:
        await stop.wait()
        server.close()
        await server.wait_closed()
