"""The DICOM listener: Verification and Storage SCP (later Worklist and MPPS).

    manage.py dicom_listener [--port 11112] [--ae-title VETPACS] [--processes N]

With --processes N, N processes serve the same port (SO_REUSEPORT), so the listener uses more
than one core. SIGTERM or SIGINT stops it cleanly: associations in progress finish first.
"""
import logging
import os
import signal
import sys
import threading

from django.conf import settings
from django.core.management.base import BaseCommand

log = logging.getLogger("imaging.dicom")


class Command(BaseCommand):
    help = "Run the DICOM listener (C-ECHO, C-STORE)."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.DICOM_PORT)
        parser.add_argument("--ae-title", default=settings.DICOM_AE_TITLE)
        parser.add_argument("--bind", default=settings.DICOM_BIND)
        parser.add_argument("--processes", type=int, default=1)

    def handle(self, *args, port, ae_title, bind, processes, **options):
        children = []
        shared = processes > 1
        for _ in range(processes - 1):
            pid = os.fork()
            if pid == 0:
                self.serve(ae_title, bind, port, shared)
                os._exit(0)
            children.append(pid)
        self.serve(ae_title, bind, port, shared, children=children)

    def serve(self, ae_title, bind, port, shared, children=()):
        from django.db import connections

        from imaging.dicom.ae import ae_build, server_start

        connections.close_all()  # never share a parent's database connection across a fork
        stop = threading.Event()

        def on_signal(signum, frame):
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        ae = ae_build(ae_title=ae_title, max_pdu=settings.DICOM_MAX_PDU)
        server = server_start(ae, (bind, port), shared_port=shared)
        log.info("DICOM listener %s on %s:%s (pid %s)", ae_title, bind, server.server_address[1], os.getpid())
        sys.stdout.flush()
        stop.wait()
        log.info("DICOM listener stopping (pid %s)", os.getpid())
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        server.shutdown()
        for assoc in list(ae.active_associations):
            if assoc.is_established:  # let transfers in progress finish
                assoc.join(timeout=30)
        ae.shutdown()
        for pid in children:
            os.waitpid(pid, 0)
