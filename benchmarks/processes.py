"""What the benchmark scripts share: starting and stopping the servers they measure."""
import os
import signal
import socket
import subprocess
import time

HOST = "127.0.0.1"
STARTED = []  # every Popen a benchmark started, stopped in its main's finally


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


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_for(check, *, timeout, interval=0.1, what="a condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
