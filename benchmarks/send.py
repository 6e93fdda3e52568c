"""Sending a study to a storescp: VetPACS's C-STORE SCU (sending/dicom_out.py, the sender a
Send uses) against dcmtk's storescu sending the same files to the same receiver in the same run.

    .venv/bin/python benchmarks/send.py [--count 500] [--size 512] [--rounds 3] [--smoke]

Builds ``--count`` distinct instances (CT from pydicom's CT_small.dcm with ``--size``² 16-bit
pixels, Explicit VR Little Endian) in a temporary storage folder, starts one dcmtk storescp
writing files (bit preserving, +B), and in each round sends them all over one association with
storescu (TCP_NODELAY=1, which dcmtk reads) and with dicom_send, alternating who goes first.
It prints images/s and MB/s of each (median of the rounds) and the ratio, against the target of
at least 0.8x. What it times is the send itself: association, every C-STORE and its answer, and
release; the task's database writes (results a batch of 25 at a time) are not in it.
--smoke: 5 instances of 64², one round (tests/test_benchmarks.py runs it).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.harness import HOST, free_port, med, port_open, target, wait_for  # noqa: E402

STORESCP, STORESCU = "/usr/bin/storescp", "/usr/bin/storescu"


def corpus(folder: Path, count: int, size: int) -> list[Path]:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    base.Rows = base.Columns = size
    base.PixelData = (bytes(range(256)) * (size * size * 2 // 256 + 1))[: size * size * 2]
    study, series = generate_uid(), generate_uid()
    paths = []
    for number in range(1, count + 1):
        base.StudyInstanceUID, base.SeriesInstanceUID = study, series
        base.SOPInstanceUID = base.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        base.InstanceNumber = number
        path = folder / f"{number:05d}.dcm"
        base.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def storescu_run(paths: list[Path], port: int) -> float:
    start = time.perf_counter()
    subprocess.run([STORESCU, "-aet", "BENCH", "-aec", "PEER", HOST, str(port), *map(str, paths)],
                   check=True, env={**os.environ, "TCP_NODELAY": "1"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - start


def vetpacs_run(paths: list[Path], storage: Path, port: int) -> float:
    from imaging.archive.retrieve import RetrievedInstance
    from imaging.models import Modality
    from sending.dicom_out import dicom_send

    instances = [
        RetrievedInstance(
            0, "1.2.840.10008.5.1.4.1.1.2", _uid(path), "1.2.840.10008.1.2.1", str(path.relative_to(storage))
        )  # fmt: skip
        for path in paths
    ]
    node = Modality(ae_title="PEER", host=HOST, port=port, modality_type="OT")
    outcomes: list[str] = []
    start = time.perf_counter()
    dicom_send(node, "VETPACS", instances, lambda item, outcome, code, comment: outcomes.append(outcome))
    took = time.perf_counter() - start
    if outcomes.count("success") != len(paths):
        raise RuntimeError(f"only {outcomes.count('success')} of {len(paths)} sent")
    return took


def _uid(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.count, args.size, args.rounds = 5, 64, 1
    work = Path(tempfile.mkdtemp(prefix="vetpacs-send-"))
    storage, received = work / "storage", work / "received"
    (storage / "bench").mkdir(parents=True)
    received.mkdir()
    os.environ["STORAGE_ROOT"] = str(storage)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetclinic.settings")
    import django

    django.setup()
    peer = None
    try:
        paths = corpus(storage / "bench", args.count, args.size)
        megabytes = sum(path.stat().st_size for path in paths) / 1e6
        port = free_port()
        peer = subprocess.Popen([STORESCP, "+B", "+xa", "-aet", "PEER", "-od", str(received), str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        wait_for(lambda: port_open(port), timeout=20, what="storescp")
        times: dict[str, list[float]] = {"storescu": [], "vetpacs": []}
        for round_ in range(args.rounds):
            order = ["storescu", "vetpacs"] if round_ % 2 == 0 else ["vetpacs", "storescu"]
            for who in order:
                took = storescu_run(paths, port) if who == "storescu" else vetpacs_run(paths, storage, port)
                times[who].append(took)
                shutil.rmtree(received)
                received.mkdir()
        rates = {who: args.count / med(values) for who, values in times.items()}
        print(f"Sending {args.count} instances ({megabytes:.1f} MB, {args.size}x{args.size}) to storescp, "
              f"{args.rounds} round(s), median:")  # fmt: skip
        for who, rate in rates.items():
            print(f"  {who:9} {rate:8.1f} img/s  {rate * megabytes / args.count:8.1f} MB/s")
        ratio = rates["vetpacs"] / rates["storescu"]
        print(f"  ratio vetpacs/storescu: {ratio:.2f}")
        print(target("img/s against storescu", f"{ratio:.2f}x", "≥ 0.8x", ratio >= 0.8))
    finally:
        if peer is not None:
            peer.terminate()
            peer.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
