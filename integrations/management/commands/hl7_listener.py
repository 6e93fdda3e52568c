"""The HL7 v2 listener: MLLP over TCP (optionally TLS).

    manage.py hl7_listener [--port 2575] [--bind 0.0.0.0]

SIGTERM or SIGINT stops it cleanly: no new connections, messages in progress are answered.

The pool threads that handle messages keep their database connection from one message to the
next: opening one costs more than most messages.
It is not checked before each message (a ``SELECT 1`` would be one more round trip for every
message): one that broke meanwhile, say when PostgreSQL restarted, fails the message's first
statement, and is then replaced and the message handled again.

On PostgreSQL the connections bind parameters on the server and psycopg prepares the
statements a connection repeats. These database options are declared in vetclinic/settings.py
for the process role hl7 (VETPACS_PROCESS, which manage.py sets for this command).
"""

import asyncio
import logging
import signal
import ssl
import sys
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from integrations.hl7.inbound import message_receive
from integrations.hl7.mllp import serve

log = logging.getLogger("integrations.hl7")


def _handle(frame, peer):
    """One message, in a pool thread: fresh database connection state, then the service.

    If the database fails the message (its connection was lost, say), the message is handled
    once more on a new connection. That is safe however far the first try got: a message whose
    commit did go through is answered as a repeat of itself, with its first ACK.
    """
    close_old_connections()
    try:
        return message_receive(frame.data, peer, oversize=frame.oversize)
    except (InterfaceError, OperationalError) as error:
        log.warning("HL7 from %s: %s; trying again on a new database connection", peer, error)
        connection.close()
        return message_receive(frame.data, peer, oversize=frame.oversize)


class Command(BaseCommand):
    help = "Run the HL7 v2 (MLLP) listener."
    # No system checks at start: they import every URLconf and view (about a second) for a process
    # that serves none; the web process and `migrate`, which `make run` runs first, check them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.HL7_PORT)
        parser.add_argument("--bind", default=settings.HL7_BIND)

    def handle(self, *args, port, bind, **options):
        asyncio.run(self.serve(bind, port))

    async def serve(self, bind, port):
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # The pool that runs _handle: a fixed number of threads, each keeping its connection.
        loop.set_default_executor(ThreadPoolExecutor(settings.HL7_THREADS, thread_name_prefix="hl7"))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        context = None
        if settings.HL7_TLS_CERT:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(settings.HL7_TLS_CERT, settings.HL7_TLS_KEY or None)

        def started(server):
            address = server.sockets[0].getsockname()
            log.info("HL7 listener on %s:%s%s", address[0], address[1], " (TLS)" if context else "")
            sys.stdout.flush()

        await serve(host=bind, port=port, handle=_handle, max_size=settings.HL7_MAX_MESSAGE_BYTES,
                    ssl_context=context, started=started, stop=stop)  # fmt: skip
        log.info("HL7 listener stopped")
