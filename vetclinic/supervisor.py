"""`make run`'s foreground supervisor: runs every process of a Procfile, restarts one that
exits, and stops them all on Ctrl-C or SIGTERM.

honcho (what `make run` used before) stops everything when one process exits: a worker that
died with its broker took the DICOM and HL7 listeners with it. Here a process that exits is
started again after 1 s, then 2, 4 … at most ``--backoff-max`` seconds while it keeps failing;
one that stayed up for a minute starts again after 1 s.

    python -m vetclinic.supervisor [Procfile]

Each line of the Procfile is ``name: command``; the command runs under ``sh -c`` (so
``${WEB_ADDRESS:-127.0.0.1:8000}`` works) in a process group of its own, which is signalled
whole. Output lines are prefixed with the process's name. Standard library only: it starts
before anything is imported.
"""

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

STEADY = 60.0  # seconds up after which a process counts as having started well
STOP_GRACE = 10.0  # seconds between SIGTERM and SIGKILL when stopping


def procfile_read(path):
    """[(name, command)] in the file's order; blank lines and # comments skipped."""
    entries = []
    with open(path) as lines:
        for line in lines:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, command = line.partition(":")
            if not sep or not name.strip() or not command.strip():
                raise ValueError(f"{path}: not 'name: command': {line!r}")
            entries.append((name.strip(), command.strip()))
    return entries


class Process:
    def __init__(self, name, command, out, lock):
        self.name, self.command = name, command
        self.out, self.lock = out, lock
        self.popen = None
        self.started = 0.0
        self.failures = 0
        self.next_start = 0.0

    def say(self, text):
        with self.lock:
            self.out.write(f"{time.strftime('%H:%M:%S')} {self.name:>8} | {text}\n")
            self.out.flush()

    def start(self):
        self.popen = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {self.command}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signalled whole, not by the terminal's Ctrl-C
        )  # fmt: skip
        self.started = time.monotonic()
        self.say(f"started with pid {self.popen.pid}")
        threading.Thread(target=self._copy_output, args=(self.popen,), daemon=True).start()

    def _copy_output(self, popen):
        for raw in popen.stdout:
            self.say(raw.decode(errors="replace").rstrip("\n"))

    def signal(self, signum):
        if self.popen and self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signum)
            except ProcessLookupError:
                pass


class Supervisor:
    def __init__(self, entries, *, backoff_max=30.0, out=sys.stdout):
        lock = threading.Lock()
        self.processes = [Process(name, command, out, lock) for name, command in entries]
        self.backoff_max = backoff_max
        self.signalled = False

    def stop(self, signum=None, frame=None):
        # A signal handler: it runs in the main thread between two bytecodes, maybe inside an
        # earlier handler, so it takes no lock (an Event's set() takes one: Ctrl-C then SIGTERM
        # could deadlock). The loop in run() sees the flag within 0.2 s.
        self.signalled = True

    def run(self):
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGTERM, self.stop)
        for process in self.processes:
            process.start()
        while not self.signalled:
            time.sleep(0.2)
            if self.signalled:
                break
            for process in self.processes:
                self._tend(process)
        self._stop_all()

    def _tend(self, process):
        now = time.monotonic()
        if process.popen is not None:
            code = process.popen.poll()
            if code is None:
                return
            process.failures = 0 if now - process.started >= STEADY else process.failures + 1
            delay = min(2**process.failures / 2, self.backoff_max) if process.failures else 1.0
            process.say(f"exited with code {code}; starting it again in {delay:g} s")
            process.popen, process.next_start = None, now + delay
        if now >= process.next_start:
            process.start()

    def _stop_all(self):
        running = [p for p in self.processes if p.popen and p.popen.poll() is None]
        for process in running:
            process.say("stopping")
            process.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        for process in running:
            try:
                process.popen.wait(max(deadline - time.monotonic(), 0))
            except subprocess.TimeoutExpired:
                process.say(f"did not stop in {STOP_GRACE:g} s: killed")
                process.signal(signal.SIGKILL)
                process.popen.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("procfile", nargs="?", default="Procfile")
    parser.add_argument("--backoff-max", type=float, default=30.0, help="seconds between restarts, at most")
    args = parser.parse_args(argv)
    Supervisor(procfile_read(args.procfile), backoff_max=args.backoff_max).run()


if __name__ == "__main__":
    main()
