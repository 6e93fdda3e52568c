"""The DICOM listener's processes: one that serves, or a dispatcher and N that serve.

    manage.py dicom_listener [--port 11112] [--ae-title VETPACS] [--processes N]

With --processes N (N > 1), this process only accepts connections and hands each one (its file
descriptor, over a Unix socket) to whichever of N forked listener processes has the fewest
associations in progress, so that the listener uses more than one core and the load is even.
(SO_REUSEPORT let the kernel choose by a hash of the addresses: four connections often went
three to one process and one to the other.) A listener process that dies is replaced; the port
stays with this process throughout. SIGTERM or SIGINT stops it cleanly: no new connections,
associations in progress finish first.
"""

import logging
import os
import selectors
import signal
import socket
import ssl
import sys
import threading
import time
from types import FrameType

from django.conf import settings

log = logging.getLogger("imaging.dicom")


def serve(
    *,
    ae_title: str,
    address: tuple[str, int],
    channel: socket.socket | None = None,
    label: str = "",
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Run one listener process until SIGTERM/SIGINT (or, with a channel, until the dispatcher
    goes away). Without a channel it listens on ``address`` itself. With an ``ssl_context``,
    every connection is TLS (the dispatcher hands over plain sockets; the handshake is here)."""
    from django.db import connections
    from pydicom import config as pydicom_config

    from imaging.dicom.net.ae import ae_build, server_start

    # (The database options of this process, a pool among them, are in settings: VETPACS_PROCESS=dicom.)
    connections.close_all()  # never share a parent's database connection across a fork
    # pydicom checks every value it reads against its VR (regular expressions) to warn about
    # the odd ones; here that was a tenth of the CPU per image, for warnings no one reads.
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    stop = threading.Event()  # set by a signal (below) or when the dispatcher goes away
    # A signal handler runs in this thread between two bytecodes, inside stop.wait() or inside
    # an earlier handler: it must take no lock. Event.set() takes one, and a second SIGTERM
    # during the first one's set() (`timeout` sends two) deadlocked the listener for good. The
    # handler only notes the signal; the loop below looks twice a second.
    signalled: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: signalled.append(signum))
    # A handed listener leaves Ctrl-C to the dispatcher, which stops it with SIGTERM.
    signal.signal(
        signal.SIGINT, signal.SIG_IGN if channel else (lambda signum, frame: signalled.append(signum))
    )
    ae = ae_build(ae_title=ae_title, max_pdu=settings.DICOM_MAX_PDU)
    server = server_start(ae, address, channel=channel, parent_gone=stop.set, ssl_context=ssl_context)
    tls = " with TLS" if ssl_context else ""
    tls += "" if settings.DICOM_FAST_PATH else ", plain pynetdicom (DICOM_FAST_PATH=false)"
    if channel is None:
        log.info("DICOM listener %s on %s:%s (pid %s)%s",
                 ae_title, address[0], server.server_address[1], os.getpid(), tls)  # fmt: skip
    else:
        log.info("DICOM listener process %s ready (pid %s)", label, os.getpid())
    sys.stdout.flush()
    while not signalled and not stop.wait(0.5):
        pass
    log.info("DICOM listener stopping (pid %s)", os.getpid())
    server.shutdown()
    for assoc in list(ae.active_associations):
        if assoc.is_established:  # let transfers in progress finish
            assoc.join(timeout=30)
    ae.shutdown()


class Child:
    def __init__(self, pid: int, channel: socket.socket, number: int) -> None:
        self.pid, self.channel, self.number = pid, channel, number
        self.active = 0  # connections handed to it that have not ended
        self.handed = 0
        self.started = time.monotonic()


class Dispatcher:
    """Accepts on the port and hands each connection to the least busy listener process."""

    def __init__(
        self,
        *,
        ae_title: str,
        bind: str,
        port: int,
        processes: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ae_title, self.bind, self.port, self.processes = ae_title, bind, port, processes
        self.ssl_context = ssl_context
        self.children: dict[int, Child] = {}  # pid -> Child, the processes we hand connections to
        self.leaving: dict[
            int, Child
        ] = {}  # pid -> Child, processes that closed their channel but have not exited yet
        self.stopping = False
        self.selector = selectors.DefaultSelector()

    def run(self) -> None:
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        self.listener = socket.create_server((self.bind, self.port), family=family, backlog=128)
        self.listener.setblocking(False)  # a caller that resets before accept() must not hang us
        self.address = self.listener.getsockname()[:2]
        self.selector.register(self.listener, selectors.EVENT_READ)
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        for number in range(1, self.processes + 1):
            self.spawn(number)
        tls = " with TLS" if self.ssl_context else ""
        log.info("DICOM listener %s on %s:%s (pid %s), %s processes%s",
                 self.ae_title, self.bind, self.address[1], os.getpid(), self.processes, tls)  # fmt: skip
        sys.stdout.flush()
        try:
            while not self.stopping:
                for key, _ in self.selector.select(timeout=0.5):
                    if key.fileobj is self.listener:
                        self.accept()
                    elif not self.stopping:
                        self.hear(key.data)
                self.reap()
        finally:
            self.stop()

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def spawn(self, number: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until serve() sets its own
                ours.close()
                self.listener.close()  # the port stays with the dispatcher alone
                for child in self.children.values():
                    child.channel.close()
                self.selector.close()
                label = f"{number}/{self.processes}"
                serve(ae_title=self.ae_title, address=self.address, channel=theirs, label=label,
                      ssl_context=self.ssl_context)  # fmt: skip
                code = 0
            except BaseException:
                log.exception("DICOM listener process %s failed", number)
            finally:
                logging.shutdown()
                os._exit(code)
        theirs.close()
        child = self.children[pid] = Child(pid, ours, number)
        self.selector.register(ours, selectors.EVENT_READ, child)

    def accept(self) -> None:
        try:
            connection, _address = self.listener.accept()
        except OSError:
            return
        try:
            # Fewest associations in progress; among equals, the one handed fewest so far.
            for child in sorted(self.children.values(), key=lambda c: (c.active, c.handed)):
                try:
                    socket.send_fds(child.channel, [b"c"], [connection.fileno()])
                except OSError:  # it is dying; the next one then
                    continue
                child.active += 1
                child.handed += 1
                return
            log.error("no DICOM listener process to take a connection; closed it")
        finally:
            connection.close()  # the listener process has its own descriptor of it now

    def hear(self, child: Child) -> None:
        try:
            data = child.channel.recv(4096)
        except OSError:
            data = b""
        if data:
            child.active = max(0, child.active - data.count(b"d"))
            return
        # Its end of the channel closed: it died, or it is stopping (SIGTERM from someone else;
        # it finishes its associations first). Either way, put another in its place now.
        self.selector.unregister(child.channel)
        child.channel.close()
        del self.children[child.pid]
        self.leaving[child.pid] = child
        log.warning("DICOM listener process %s (pid %s) left; starting another", child.number, child.pid)
        self.reap()
        if time.monotonic() - child.started < 5:
            time.sleep(1)  # one that dies at once should not be restarted in a tight loop
        self.spawn(child.number)

    def reap(self) -> None:
        """Collect (and log) the exit of the processes that left, as they exit."""
        for child in list(self.leaving.values()):
            pid, status = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                del self.leaving[child.pid]
                log.error("DICOM listener process %s (pid %s) exited (%s)",
                          child.number, child.pid, _exit_description(status))  # fmt: skip

    def stop(self) -> None:
        log.info("DICOM listener stopping (pid %s)", os.getpid())
        self.selector.unregister(self.listener)
        self.listener.close()  # new connections are refused from now on
        everyone = [*self.children.values(), *self.leaving.values()]
        for child in everyone:
            try:
                os.kill(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 60  # each finishes its associations (30 s at most each)
        for child in everyone:
            while os.waitpid(child.pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    log.error("DICOM listener process %s (pid %s) did not stop; killed",
                              child.number, child.pid)  # fmt: skip
                    os.kill(child.pid, signal.SIGKILL)
                    os.waitpid(child.pid, 0)
                    break
                time.sleep(0.05)
            child.channel.close()


def _exit_description(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"
