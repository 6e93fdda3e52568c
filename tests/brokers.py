"""A Redis broker of the test's own, on a free port, to stop and start again: the machine's
shared Redis is never touched. Import ``private_broker`` into a test module to use it."""

import shutil
import subprocess
import types

import pytest
import redis

from tests.conftest import free_port, tool_required, wait_for


class RedisServer:
    def __init__(self, folder):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.process = None

    def start(self):
        """Start (again) on the same port, with nothing kept from before (no persistence): what
        a broker that crashed without its data looks like, the worst case for the worker."""
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        wait_for(lambda: self._ping(client), timeout=20, message="redis-server")
        client.close()

    @staticmethod
    def _ping(client):
        try:
            return client.ping()
        except redis.ConnectionError:
            return False

    def kill(self):
        """Gone at once, as when its host fails (SIGKILL: no goodbye to the clients)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def private_broker(process_env, processes_stopping, tmp_path):
    """A redis-server of this test's own; the workers and listeners the test starts use it
    (process_env is the environment they get), and so do the test's own sends, through
    ``send(name, *args)``."""
    tool_required(shutil.which("redis-server") or "/usr/bin/redis-server")
    from vetclinic.celery import app

    server = RedisServer(tmp_path)
    server.start()
    process_env["CELERY_BROKER_URL"] = server.url

    def send(name, *args, **options):
        with app.connection_for_write(server.url) as connection:
            return app.send_task(name, args=list(args), connection=connection, **options)

    yield types.SimpleNamespace(server=server, url=server.url, send=send)
    processes_stopping.wait()  # the workers and listeners on it first: a broker gone mid-stop stalls them
    server.stop()
