"""A throw-away Orthanc (Debian's ``orthanc`` 1.10 with ``orthanc-dicomweb``): a DICOM peer and
DICOMweb server nobody here wrote, for the interop tests and the benchmarks alike.

    with Orthanc(tmp_path, peers={"vetpacs": ("VETPACS", "127.0.0.1", listener.port)}) as orthanc:
        orthanc.post("/modalities/vetpacs/query", {"Level": "Study", "Query": {"PatientID": "P1"}})

Each one gets its own configuration file, storage and SQLite index in a folder of the caller's,
free DICOM and HTTP ports, HTTP on 127.0.0.1 only (``RemoteAccessAllowed`` false, so no
authentication is needed), the DICOMweb plugin at ``/dicom-web/``, and the DICOM nodes it may
talk to (``DicomModalities``): each may echo, store, find, move and get, and is where Orthanc
sends a C-MOVE or a retrieve (``/queries/{id}/retrieve``). It is ready when its REST API answers
``/system`` and its DICOM port accepts connections; ``stop`` ends it by its process id (SIGTERM,
then SIGKILL of its process group). Standard library only: the benchmarks import it too, without
Django or pytest.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"  # Debian's package puts it in /usr/sbin
# orthanc-dicomweb's plugin, as Debian installs it (`dpkg -L orthanc-dicomweb`).
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class OrthancError(RuntimeError):
    """Orthanc did not start, or its REST API answered an error (status and body in the text)."""


class Orthanc:
    """One Orthanc process in ``workdir/<name>/``.

    ``peers``: ``{id: (AE title, host, port)}``, the DicomModalities entries (``id`` is the name
    in the REST API's ``/modalities/{id}``). ``dicomweb``: load the DICOMweb plugin. ``config``:
    more configuration entries, each replacing the default's whole top-level entry (so give the
    whole ``"DicomWeb"`` section to add its ``"Servers"``; or Orthanc's ``"MaximumPduLength"``).
    ``env``: the process's environment (dcmtk, which Orthanc's DICOM server is built on, reads
    ``TCP_NODELAY`` from it). Files go in with ``post("/instances", data)`` or over DICOM.
    """

    def __init__(
        self,
        workdir: Path | str,
        *,
        name: str = "orthanc",
        aet: str = "ORTHANC",
        peers: dict[str, tuple[str, str, int]] | None = None,
        dicomweb: bool = True,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(workdir) / name
        self.aet = aet
        self.peers = dict(peers or {})
        self.dicomweb = dicomweb
        self.extra = dict(config or {})
        self.env = dict(os.environ if env is None else env)
        self.dicom_port, self.http_port = free_port(), free_port()
        self.log = self.root / "orthanc.log"
        self.proc: subprocess.Popen[bytes] | None = None

    # --- life ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The REST API's base URL (no trailing slash)."""
        return f"http://{HOST}:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (PS3.18 paths go after it: ``/studies``, ...)."""
        return f"{self.url}/dicom-web"

    def configuration(self) -> dict[str, Any]:
        storage = self.root / "storage"
        plugins = [DICOMWEB_PLUGIN] if self.dicomweb else []
        config: dict[str, Any] = {
            "Name": self.root.name,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "Plugins": plugins,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            # Only this machine may reach it, so it needs no users (Orthanc refuses to start
            # with authentication off and remote access on).
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpDescribeErrors": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": False,
            "DicomCheckModalityHost": False,
            "DicomModalities": {
                peer: {
                    "AET": aet,
                    "Host": host,
                    "Port": port,
                    "AllowEcho": True,
                    "AllowFind": True,
                    "AllowMove": True,
                    "AllowGet": True,
                    "AllowStore": True,
                }
                for peer, (aet, host, port) in self.peers.items()
            },
            # Plugin 1.7's defaults, written out: the series and study metadata read from every
            # instance's file ("Full"), DICOMweb at /dicom-web/.
            "DicomWeb": {"Enable": self.dicomweb, "Root": "/dicom-web/", "EnableWado": True},
        }
        config.update(self.extra)
        return config

    def start(self, timeout: float = 60) -> "Orthanc":
        for tool in [ORTHANC] + ([DICOMWEB_PLUGIN] if self.dicomweb else []):
            if not os.path.exists(tool):
                raise OrthancError(
                    f"{tool} is not installed (`make system-tools` installs orthanc and orthanc-dicomweb)"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "storage").mkdir(exist_ok=True)
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(self.configuration(), indent=2))
        with open(self.log, "ab") as out:
            # Its own session, so that stop() can signal it and anything it forks as one group.
            self.proc = subprocess.Popen(
                [ORTHANC, str(path)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise OrthancError(f"Orthanc exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise OrthancError(f"Orthanc not ready after {timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.05)
        return self

    def ready(self) -> bool:
        """Its REST API answers /system and its DICOM port takes connections."""
        try:
            with urllib.request.urlopen(f"{self.url}/system", timeout=2) as response:
                if response.status != 200:
                    return False
        except OSError:
            return False
        return port_open(self.dicom_port)

    def stop(self, timeout: float = 30) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait(timeout=10)

    def __enter__(self) -> "Orthanc":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    # --- its REST API --------------------------------------------------------------------------

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)`` of one request to ``path`` (under the REST API's root);
        an HTTP error status is returned, not raised."""
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def get(self, path: str) -> Any:
        """The JSON a GET answers; OrthancError on an error status."""
        return self._json("GET", path, None)

    def post(self, path: str, body: Any) -> Any:
        """POST ``body`` as JSON (bytes as they are: a DICOM file to ``/instances``)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self._json("POST", path, data)

    def _json(self, method: str, path: str, data: bytes | None) -> Any:
        status, _, body = self.request(method, path, data)
        if status >= 400:
            raise OrthancError(f"{method} {path}: {status} {body[:1000].decode(errors='replace')}")
        return json.loads(body) if body else None

    def count(self) -> int:
        """How many instances it holds."""
        return int(self.get("/statistics")["CountInstances"])

    def query(self, peer: str, level: str, keys: dict[str, str]) -> tuple[str, list[dict[str, Any]]]:
        """A C-FIND to ``peer`` through ``/modalities/{peer}/query``: the query's id (for
        ``retrieve``) and its answers as Orthanc reads them (``/queries/{id}/answers?expand``)."""
        made = self.post(f"/modalities/{peer}/query", {"Level": level, "Query": keys})
        answers = self.get(f"/queries/{made['ID']}/answers?expand&simplify")
        return made["ID"], answers

    def retrieve(self, query_id: str) -> Any:
        """A C-MOVE of everything a query answered, to this Orthanc itself, waited for."""
        return self.post(f"/queries/{query_id}/retrieve", {"TargetAet": self.aet, "Synchronous": True})
