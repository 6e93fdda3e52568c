"""What every benchmark shares, so that each script keeps only what it measures.

- a throw-away database: PostgreSQL next to DATABASE_URL's (or a fallback server), else a
  temporary SQLite file; created, migrated and dropped here;
- free ports and the processes a benchmark starts (our listeners, gunicorn, Celery workers, the
  baselines): each in its own session, waited for until ready, stopped by its id at the end;
- CPU time of a process tree and of the whole machine, from /proc;
- percentiles, medians and ranges, the printed table and the "target: figure, met / not met"
  line. The scripts print targets; they never assert them.
"""

import http.client
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
_VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(_VENV_PYTHON) if _VENV_PYTHON.exists() else sys.executable
HOST = "127.0.0.1"
POSTGRES_SCHEMES = ("postgres", "postgresql", "pgsql")
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
STARTED = []  # every process a benchmark started; stop_all() in its main's finally


# --- the names the generated owners and animals get ------------------------------------------

# Owners' family and given names and animals' names (the scripts add their own to these; hl7.py
# sends them folded to ASCII).
FAMILY = (
    "Hartley Okafor García Nguyen Schmidt Rossi Kowalski Dubois Jensen Murphy Smith Jones Taylor Brown"
    " Wilson Evans Thomas Johnson Roberts Walker"
).split()
GIVEN = "Jane Chidi Lucía Linh Anna Marco Piotr Claire Lars Sean Amira Tom".split()
PETS = (
    "Biscuit Pepper Rocco Daisy Bella Max Luna Charlie Milo Poppy Teddy Willow Ziggy Nala Oscar Bramble"
    " Pickle Juniper Hazel Rufus"
).split()


def ascii_fold(names):
    """The names without their accents (García: Garcia)."""
    return [unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode() for name in names]


# --- the database ----------------------------------------------------------------------------


def postgres_url():
    """DATABASE_URL when it names PostgreSQL, else the local server (for the benchmarks that
    measure PostgreSQL only)."""
    url = os.environ.get("DATABASE_URL", "")
    return url if urlsplit(url).scheme in POSTGRES_SCHEMES else DEFAULT_POSTGRES


class Database:
    """A throw-away database named ``vetpacs_bench_<label>_<pid>`` on the PostgreSQL server
    ``url`` names, or, when ``url`` is empty or SQLite, the file bench-<label>.sqlite3 in
    ``workdir``. ``reuse``: an existing PostgreSQL database, neither created nor dropped."""

    def __init__(self, url, label, *, workdir=None, reuse=None):
        parts = urlsplit(url) if url else None
        self.reused = reuse is not None
        if parts and parts.scheme in POSTGRES_SCHEMES:
            self.kind = "postgresql"
            self.name = reuse or f"vetpacs_bench_{label}_{os.getpid()}"
            self.admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
            self.url = urlunsplit(parts._replace(path=f"/{self.name}"))
            self.django_name = self.name
            if not self.reused:
                self._admin(f'DROP DATABASE IF EXISTS "{self.name}"', f'CREATE DATABASE "{self.name}"')
        else:
            if parts and parts.scheme != "sqlite":
                raise SystemExit(f"DATABASE_URL scheme {parts.scheme!r}: only PostgreSQL or SQLite")
            if workdir is None:
                raise SystemExit("this benchmark runs on PostgreSQL")
            self.kind = "sqlite"
            self.name = None
            self.django_name = str(Path(workdir) / f"bench-{label}.sqlite3")
            self.url = f"sqlite:///{self.django_name}"

    def _admin(self, *statements):
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql)

    def migrate(self, env):
        """``manage.py migrate`` in a process of its own, with ``env`` pointed at this database."""
        done = subprocess.run(
            [PYTHON, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env={**env, "DATABASE_URL": self.url},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode:
            raise RuntimeError(f"migrate failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")

    def use(self):
        """Point this process's Django connection at this database."""
        from django.db import connections

        connections.close_all()
        connections["default"].settings_dict["NAME"] = self.django_name

    def migrate_here(self):
        """Use this database in this process and migrate it (Django set up already)."""
        from django.core.management import call_command

        self.use()
        call_command("migrate", verbosity=0, interactive=False)

    def drop(self):
        """Close this process's connections and drop it (a SQLite file goes with its work dir)."""
        try:
            from django.conf import settings

            if settings.configured:
                from django.db import connections

                connections.close_all()
        except ImportError:
            pass
        if self.kind == "postgresql" and not self.reused:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def __str__(self):
        return f"{self.kind} {self.name or self.django_name}"


def cleanup(databases, workdir, *, keep=False):
    """Drop the databases and remove the work dir, unless ``keep``; says what it kept or could
    not drop, and goes on (a benchmark's finally must reach its last line)."""
    for db in databases:
        if db is None:
            continue
        if keep or db.reused:
            print(f"kept: database {db}")
            continue
        try:
            db.drop()
        except Exception as error:
            print(f"could not drop the benchmark database {db}: {error}", file=sys.stderr)
    if workdir is None:
        return
    if keep:
        print(f"kept: work dir {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


# --- processes ---------------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port):
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(port, path):
    """True when GET ``path`` answers 200."""
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("GET", path)
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def tail(path, n=2000):
    try:
        return Path(path).read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""


def wait_for(check, *, timeout, interval=0.1, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def start(args, *, env, log, cwd=ROOT):
    """A process in its own session (so that its children go with it), output to ``log``."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    STARTED.append(proc)
    return proc


def launch(args, *, env, log, ready, what, timeout=60, cwd=ROOT):
    """``start``, then wait until ``ready()`` is true; raises with the log's tail if it exits."""
    proc = start(args, env=env, log=log, cwd=cwd)
    wait_for(lambda: proc.poll() is not None or ready(), timeout=timeout, what=what)
    if proc.poll() is not None:
        stop(proc)
        raise RuntimeError(f"{what} exited: {tail(log)}")
    return proc


def stop(proc, timeout=30):
    """SIGTERM; if it lingers, SIGKILL its process group (it leads its own session: forked
    listener children, worker pool children, wlmscpfs's child per association)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
    if proc in STARTED:
        STARTED.remove(proc)


def stop_all():
    for proc in list(STARTED):
        stop(proc)


class Gunicorn:
    """``app`` under gunicorn (gthread workers, keep-alive) on a free port, ready when ``health``
    answers 200; stopped in __exit__ (the arbiter stops its workers)."""

    def __init__(self, app, workdir, env, workers, threads, health="/api/v1/health"):
        self.app, self.env, self.workers, self.threads, self.health = app, env, workers, threads, health
        self.port = free_port()
        self.log = Path(workdir) / "gunicorn.log"
        self.proc = None

    def __enter__(self):
        args = [
            PYTHON,
            "-m",
            "gunicorn",
            self.app,
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(self.threads),
            "--keep-alive",
            "75",
            "--backlog",
            "256",
            "--log-level",
            "warning",
            "--chdir",
            str(ROOT),
        ]
        what = f"gunicorn to answer {self.health}"
        self.proc = launch(
            args, env=self.env, log=self.log, ready=lambda: http_ok(self.port, self.health), what=what
        )
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            stop(self.proc)


# --- CPU ---------------------------------------------------------------------------------------


def cpu_seconds(pid):
    """User + system CPU of a process and its descendants (threads included), from /proc;
    with the children it has reaped (storescp --fork's)."""
    children, ticks = {}, os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, todo, seen = 0.0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in stats:
            total += sum(int(v) for v in stats[current][11:15]) / ticks  # utime stime cutime cstime
        todo.extend(children.get(current, []))
    return total


def host_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat: how loaded the machine was."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def busy_share(before, after):
    """Percent of all CPUs busy between two host_busy() readings."""
    return 100 * (after[0] - before[0]) / max(1, after[1] - before[1])


# --- figures -----------------------------------------------------------------------------------


def percentile(values, q):
    """The nearest-rank percentile: the smallest value with at least ``q`` of them at or below."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def med(values):
    values = list(values)
    return statistics.median(values) if values else float("nan")


def span(values, spec):
    """``median [min–max]`` in format ``spec``; "-" for none."""
    values = list(values)
    if not values:
        return "-"
    return f"{format(med(values), spec)} [{format(min(values), spec)}–{format(max(values), spec)}]"


def fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def table(header, rows, *, left=1, indent="  ", rule=False):
    """A text table: the first ``left`` columns (or the columns numbered in ``left``) aligned
    left, the others right, each as wide as its widest cell. Cells past the header's columns
    are appended as they are (a note on that row)."""
    left = range(left) if isinstance(left, int) else left
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(row[i])) for row in [header, *rows] if i < len(row)) for i in range(len(header))]

    def line(cells):
        parts = [
            cell.ljust(widths[i]) if i in left else cell.rjust(widths[i]) if i < len(widths) else cell
            for i, cell in enumerate(cells)
        ]
        return (indent + " ".join(parts)).rstrip()

    lines = [line([str(h) for h in header])]
    if rule:
        lines.append(indent + "-" * (sum(widths) + len(widths) - 1))
    return "\n".join(lines + [line(row) for row in rows])


def target(what, figure, goal, met):
    """The line that gives a target's figure against its goal: ``what: figure; target goal: met``."""
    return f"  {what}: {figure}; target {goal}: {'met' if met else 'not met'}"
