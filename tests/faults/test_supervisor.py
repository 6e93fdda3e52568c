"""`make run`'s supervisor (vetclinic/supervisor.py), run as `make run` runs it, on a Procfile of
two small processes that write their pid to a file."""

import os
import signal
import subprocess
import sys

from tests.conftest import ROOT, wait_for

SCRIPT = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child the supervisor has not reaped yet is a zombie: gone for our purposes.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1][0] != "Z"


def test_a_crashed_process_is_started_again_and_sigterm_stops_them_all(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f'worker: {sys.executable} -c "{SCRIPT}" {tmp_path / "worker.pid"}\n'
        f'dicom: {sys.executable} -c "{SCRIPT}" {tmp_path / "dicom.pid"}\n'
    )
    log = tmp_path / "supervisor.log"
    with open(log, "w") as out:
        supervisor = subprocess.Popen([sys.executable, "-m", "vetclinic.supervisor", str(procfile)],
                                      cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:

        def pid(name):
            path = tmp_path / f"{name}.pid"
            return int(path.read_text() or 0) if path.exists() else 0

        worker, dicom = wait_for(lambda: pid("worker") and pid("dicom") and (pid("worker"), pid("dicom")),
                                 timeout=30, message="both processes")  # fmt: skip

        os.kill(worker, signal.SIGKILL)  # the worker crashes
        again = wait_for(lambda: pid("worker") != worker and pid("worker"), timeout=30, message="a new one")

        assert alive(again) and not alive(worker)
        assert alive(dicom), "the other process was left running"
        assert supervisor.poll() is None
        assert "worker | exited with code -9; starting it again" in log.read_text()

        # Ctrl-C and SIGTERM in a burst, as a terminal and a service manager may send them: the
        # handler takes no lock, so one arriving inside another cannot deadlock it.
        for n in range(200):
            if supervisor.poll() is not None:
                break
            supervisor.send_signal(signal.SIGTERM if n % 2 else signal.SIGINT)
        assert supervisor.wait(timeout=30) == 0
        assert not alive(again) and not alive(dicom), log.read_text()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
