"""The DICOM listener: ``manage.py dicom_listener [--port 11112] [--ae-title VETPACS]
[--processes N]``. Its processes (one, or a dispatcher and N listeners) are
imaging/dicom/net/listener.py; the node they run is imaging/dicom/net/ae.py."""

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the DICOM listener (C-ECHO, C-STORE)."
    # No system checks at start: they import every URLconf and view (about a second) for a process
    # that serves none; the web process and `migrate`, which `make run` runs first, check them.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--port", type=int, default=settings.DICOM_PORT)
        parser.add_argument("--ae-title", default=settings.DICOM_AE_TITLE)
        parser.add_argument("--bind", default=settings.DICOM_BIND)
        parser.add_argument("--processes", type=int, default=1)

    def handle(self, *args: Any, port: int, ae_title: str, bind: str, processes: int, **options: Any) -> None:
        from imaging.dicom.net.listener import Dispatcher, serve
        from imaging.dicom.net.tls import listener_context

        if settings.DICOM_FAST_PATH:
            from imaging.dicom.net.fast import UnsupportedPynetdicom, version_check

            try:
                version_check()  # here, before any process is forked that would fail the same way
            except UnsupportedPynetdicom as exc:
                raise CommandError(str(exc)) from exc
        try:
            # Built once, here, so that a missing or wrong file stops the command at once (a
            # forked listener process inherits it).
            ssl_context = listener_context()
        except (OSError, ValueError) as exc:
            raise CommandError(f"DICOM TLS (DICOM_TLS_CERT, DICOM_TLS_KEY, DICOM_TLS_CA): {exc}") from exc
        if processes > 1:
            Dispatcher(
                ae_title=ae_title, bind=bind, port=port, processes=processes, ssl_context=ssl_context
            ).run()
        else:
            serve(ae_title=ae_title, address=(bind, port), ssl_context=ssl_context)
