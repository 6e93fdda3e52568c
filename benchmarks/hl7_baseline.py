"""The baseline for benchmarks/hl7.py: a bare MLLP listener that checks each message with
hl7apy, as integrations/hl7/messages.structure_check does when it asks hl7apy, and answers AA
without a database.

    .venv/bin/python benchmarks/hl7_baseline.py --port 2576

No Django, no log, no thread pool: one asyncio loop that splits frames, parses and answers,
the least a listener that looks at the message at all can do. SIGTERM stops it.
"""

import argparse
import asyncio
import re
import signal
import sys

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

START, END = b"\x0b", b"\x1c\x0d"


def answer(data):
    text = data.decode("utf-8", "replace")
    lines = [s for s in re.split(r"\r\n|\r|\n", text) if s.strip()]  # as messages.segments
    msh = lines[0].split(lines[0][3])
    code = "AA"
    try:
        parse_message("\r".join(lines), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)
    except Exception:
        code = "AE"
    trigger = msh[8].split("^")[1] if "^" in msh[8] else ""
    ack = (
        f"MSH|^~\\&|BASELINE||{msh[2]}|{msh[3]}|20260101000000||ACK^{trigger}^ACK|A{msh[9]}|P|{msh[11]}\r"
        f"MSA|{code}|{msh[9]}\r"
    )
    return START + ack.encode() + END


async def connection(reader, writer):
    buffer = b""
    try:
        while data := await reader.read(65536):
            buffer += data
            while (end := buffer.find(END)) >= 0:
                start = buffer.find(START)
                writer.write(answer(buffer[start + 1 : end]))
                buffer = buffer[end + len(END) :]
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port):
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    server = await asyncio.start_server(connection, "127.0.0.1", port, reuse_address=True)
    print(f"baseline listening on {port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))
    sys.exit(0)
