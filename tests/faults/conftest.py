"""Fixtures of the fault suite: a PostgreSQL server of the test's own, to crash.

The machine's PostgreSQL and Redis serve other test runs: these tests never stop them. A
broker to kill is tests/brokers.py's ``private_broker``.
"""

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT, free_port, tool_required


def _pg_tool(name):
    """initdb and pg_ctl: on the PATH, else where Debian's packages put them (the newest)."""
    packaged = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return tool_required(shutil.which(name) or (packaged or [f"/usr/lib/postgresql/15/bin/{name}"])[-1])


class PostgresServer:
    """initdb and pg_ctl in a folder of its own, on a free port. PostgreSQL refuses to run as
    root: as root, the commands run as the postgres user."""

    def __init__(self, *, settings=()):
        self.folder = Path(tempfile.mkdtemp(prefix="vetpacs-pg-"))
        self.data, self.port = self.folder / "data", free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/vetpacs"
        self.settings = settings
        self.as_owner = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command):
        subprocess.run([*self.as_owner, *command], check=True, capture_output=True)

    def create(self):
        self._run(_pg_tool("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        self.start()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE vetpacs")

    @property
    def admin_url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self):
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 " + " ".join(
            f"-c {name}={value}" for name, value in self.settings
        )
        log = str(self.folder / "log")
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def crash(self):
        """Stop at once, as a crash does: no checkpoint, what is only in shared memory is lost;
        the next start replays the WAL."""
        self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def query(self, sql, *params):
        with psycopg.connect(self.url.replace("postgres://", "postgresql://"), connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def remove(self):
        try:
            self._run(_pg_tool("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        except subprocess.CalledProcessError:
            pass  # not running
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres(process_env):
    """A migrated PostgreSQL database on a server of this test's own; the workers and listeners
    the test starts use it (process_env is their environment).

    wal_writer_delay is at its longest (10 s) and the writer flushes on no amount of WAL: a
    commit that does not wait for its flush stays in memory for seconds, so a crash shows
    reliably what it would lose now and then in production."""
    server = PostgresServer(settings=[("wal_writer_delay", "10s"), ("wal_writer_flush_after", "1GB")])
    try:
        server.create()
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True,
                       env={**process_env, "DATABASE_URL": server.url})  # fmt: skip
        process_env["DATABASE_URL"] = server.url
        yield server
    finally:
        server.remove()


def worker_succeeded(worker, task="imaging.tasks.instances_ingest"):
    """How many of ``task`` the worker's log says succeeded (acknowledged: late acks)."""
    return sum(1 for line in worker.log.read_text().splitlines() if task in line and "succeeded" in line)
