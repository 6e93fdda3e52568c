"""HL7 v2 inbound throughput: ADT^A08 updates through `manage.py hl7_listener` against a bare
hl7apy MLLP listener.

    .venv/bin/python benchmarks/hl7.py [--animals 1000] [--messages 1000] [--runs 5]

Creates a throw-away PostgreSQL database next to DATABASE_URL's (else on
postgres://postgres@127.0.0.1:5432), migrates it, starts `manage.py hl7_listener` on a free
port against it and registers --animals dogs and cats with their owners by ADT^A04 (over four
connections; the rate is printed but is not a target). Then, --runs times, it sends --messages
ADT^A08 updates over one connection and as many again over four concurrent connections (each
its own control ids), waiting for each ACK before the next message on that connection. Each
A08 is what a PMS sends when the front desk edits an animal: the whole record, with one thing
changed in turn: the owner's phone (NK1-5), the weight (OBX, a new value), or the animal's name
(PID-5).

The baseline, in the same invocation and on the same messages: benchmarks/hl7_baseline.py, a
bare asyncio MLLP listener that parses each message with hl7apy exactly as
integrations/hl7/messages.structure_check does when it asks hl7apy (tolerant, no groups), and
answers AA without a database.
The two take turns run by run, so that whatever else the machine does falls on both alike.

Printed: messages/s per receiver and connection count (median of the runs [min–max]), the
ratio ours/baseline, the issue's targets (at least 0.5 of the baseline, at least 200 messages/s
on one connection) as "met"/"not met" (never asserted), whether every ACK was AA for its own
control id, and whether the database holds every animal's last name, phone and weight sent.
The database is dropped at the end.
"""

import argparse
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402
from benchmarks.harness import HOST, PYTHON, ROOT, free_port, port_open  # noqa: E402

START, END = b"\x0b", b"\x1c\x0d"
TARGET_RATIO, TARGET_ONE = 0.5, 200

from tests.hl7_samples import msh, nk1, obx_weight, pid, segment  # noqa: E402

# The harness's names without accents.
FAMILY, GIVEN = harness.ascii_fold(harness.FAMILY), harness.ascii_fold(harness.GIVEN)
PETS = harness.PETS
# (species, breeds) as SNOMED CT codes from the shipped vocabulary (patients/vocabulary).
KINDS = [
    (
        "448771007^Canis lupus familiaris^SCT",
        ["62137007^Labrador retriever^SCT", "44696006^Beagle^SCT", "132619000^Mixed breed dog^SCT"],
    ),
    ("448169003^Felis catus^SCT", ["15020009^Domestic shorthaired cat^SCT", "68086001^Persian cat^SCT"]),
]


# --- the animals and their messages -------------------------------------------------------------


@dataclass
class Animal:
    """What the PMS holds for one animal; every message carries all of it."""

    n: int
    family: str
    given: str
    name: str
    sex: str
    born: str
    species: str
    breed: str
    phone: str
    kg: Decimal

    @property
    def pms_id(self):
        return f"BENCH-{self.n:05d}"


def animals_make(count, rng):
    result = []
    for n in range(count):
        species, breeds = KINDS[n % 5 == 4]  # four dogs to a cat
        result.append(
            Animal(
                n=n,
                family=rng.choice(FAMILY),
                given=rng.choice(GIVEN),
                name=rng.choice(PETS),
                sex=rng.choice("MF"),
                born=f"20{rng.randint(10, 24)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
                species=species,
                breed=rng.choice(breeds),
                phone=f"01632{960000 + n:06d}",
                kg=Decimal(rng.randint(3000, 40000)) / 1000,
            )
        )
    return result


def adt(event, control_id, animal):
    """ADT^A04/A08 as a PMS sends it (2.5.1): MSH, EVN, PID with PID-35/36, NK1 owner, PV1, weight OBX."""
    lines = [
        msh(f"ADT^{event}^ADT_A01", control_id),
        segment("EVN", {1: event, 2: "20261123101500"}),
        pid(
            pms_id=animal.pms_id,
            name=f"{animal.family}^{animal.name}",
            born=animal.born,
            sex=animal.sex,
            species=animal.species,
            breed=animal.breed,
            account=f"ACC-{animal.n:05d}",
        ),
        nk1(
            name=f"{animal.family}^{animal.given}",
            phone=animal.phone,
            address=f"{animal.n} Mill Lane^^Ashford^^TN24 8AA^GBR",
        ),
        segment("PV1", {1: "1", 2: "O"}),
        obx_weight(value=f"{animal.kg}"),
    ]
    return ("\r".join(lines) + "\r").encode()


class Updates:
    """A08s: each changes one thing of an animal, in turn its phone, its weight, its name.
    ``apply`` keeps the state the database should reach (only for messages our listener got)."""

    def __init__(self, animals):
        self.animals = animals
        self.serial = 0
        # A step prime to the number of animals: no animal twice in any run of that many
        # messages, so none is updated on two connections at once (the check could not tell
        # which arrived last).
        self.step = next(p for p in (7, 11, 13, 17, 19, 23, 29) if len(animals) % p)

    def batch(self, prefix, count):
        """[(control id, frame, animal after the change)]; the animals' state is not touched yet."""
        out = []
        for j in range(count):
            self.serial += 1
            current = self.animals[(self.serial * self.step) % len(self.animals)]
            changed = Animal(**vars(current))
            kind = self.serial % 3
            if kind == 0:
                changed.phone = f"07700{self.serial:06d}"
            elif kind == 1:
                # Never a weight the animal had before: weight_record keeps one record of a weight
                # a day, so 10.4, 4.4, 10.4 on one day leaves 4.4 the latest.
                changed.kg = Decimal(50000 + self.serial) / 1000
            else:
                changed.name = (
                    PETS[(PETS.index(current.name.split()[0]) + 1) % len(PETS)] + f" {self.serial % 97}"
                )
            control = f"{prefix}-{j:05d}"
            out.append((control, START + adt("A08", control, changed) + END, changed))
        return out

    def apply(self, batch):
        for _, _, changed in batch:
            self.animals[changed.n] = changed


# --- sending --------------------------------------------------------------------------------------


def exchange(port, items, results, index, barrier):
    """Send each frame and wait for its ACK; results[index] = [(control id, MSA-1, MSA-2)]."""
    acks = []
    with socket.create_connection((HOST, port), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        if barrier is not None:
            barrier.wait()
        for control, data, _ in items:
            sock.sendall(data)
            while END not in buffer:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed by the listener after {len(acks)} ACKs")
                buffer += chunk
            reply, _, buffer = buffer.partition(END)
            msa = next(
                (s for s in reply[1:].decode("utf-8", "replace").split("\r") if s.startswith("MSA")), "MSA||"
            )
            fields = msa.split("|")
            acks.append((control, fields[1], fields[2] if len(fields) > 2 else ""))
    results[index] = acks


def send(port, batch, connections):
    """Messages per second for ``batch`` over ``connections`` concurrent connections (each sends
    its share in order, one at a time); returns (rate, acks)."""
    shares = [batch[i::connections] for i in range(connections)]
    results = [None] * connections
    barrier = threading.Barrier(connections + 1)
    threads = [
        threading.Thread(target=exchange, args=(port, share, results, i, barrier), daemon=True)
        for i, share in enumerate(shares)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    if any(r is None for r in results):
        raise RuntimeError("a connection failed (see above)")
    return len(batch) / seconds, [ack for r in results for ack in r]


def not_aa(acks):
    """ACKs that are not AA for their own control id."""
    return [a for a in acks if a[1] != "AA" or a[2] != a[0]]


# --- the database afterwards ---------------------------------------------------------------------


def database_check(animals, messages):
    """(animals whose name, phone or weight is not the last sent, processed log rows, rows expected)."""
    from integrations.models import HL7Message
    from patients.models import Patient

    wrong = []
    found = {}
    patients = Patient.objects.filter(external_ids__system="hl7:VETPMS").prefetch_related(
        "external_ids", "ownerships__owner", "weights"
    )
    for patient in patients:
        found[next(e.value for e in patient.external_ids.all() if e.system == "hl7:VETPMS")] = patient
    for animal in animals:
        patient = found.get(animal.pms_id)
        owner = patient.primary_owner if patient else None
        if patient is None:
            wrong.append(f"{animal.pms_id} missing")
            continue
        got = (patient.name, owner.phone if owner else None, patient.current_weight)
        if got != (animal.name, animal.phone, animal.kg):
            wrong.append(f"{animal.pms_id} {got} instead of {(animal.name, animal.phone, animal.kg)}")
    processed = HL7Message.objects.filter(direction="in", status="processed").count()
    return wrong, processed, messages


# --- main -------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--animals", type=int, default=1000, help="animals registered by A04 first (default 1000)"
    )
    parser.add_argument(
        "--messages", type=int, default=1000, help="A08s per run and connection count (default 1000)"
    )
    parser.add_argument("--runs", type=int, default=5, help="runs of each (default 5); medians are reported")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections (default 4)")
    args = parser.parse_args()
    if args.messages > args.animals:
        parser.error(
            "--messages must not be more than --animals (an animal updated on two connections at once)"
        )
    rng = random.Random(7)

    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="vetpacs-bench-hl7-"))
    db = None
    ok = True
    try:
        db = harness.Database(harness.postgres_url(), "hl7")
        env = os.environ.copy()
        env.update(
            {
                "DATABASE_URL": db.url,
                "VAR_DIR": str(workdir / "var"),
                "DEBUG": "false",
                "SECRET_KEY": uuid.uuid4().hex * 2,
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
            }
        )
        print(f"database: postgresql {db.name}; work dir {workdir}; {os.cpu_count()} CPUs", flush=True)
        db.migrate(env)

        ours_port, base_port = free_port(), free_port()
        ours = harness.launch(
            [PYTHON, "manage.py", "hl7_listener", "--bind", HOST, "--port", str(ours_port)],
            env=env,
            log=workdir / "hl7_listener.log",
            ready=lambda: port_open(ours_port),
            what="hl7_listener",
        )
        base = harness.launch(
            [PYTHON, str(ROOT / "benchmarks" / "hl7_baseline.py"), "--port", str(base_port)],
            env=env,
            log=workdir / "baseline.log",
            ready=lambda: port_open(base_port),
            what="the baseline",
        )

        animals = animals_make(args.animals, rng)
        registrations = [
            (f"REG-{a.n:05d}", START + adt("A04", f"REG-{a.n:05d}", a) + END, a) for a in animals
        ]
        rate, acks = send(ours_port, registrations, 4)
        bad = not_aa(acks)
        print(
            f"registered {len(animals):,} animals with their owners by ADT^A04 over 4 connections:"
            f" {rate:.1f}/s"
            f"{'' if not bad else f'; NOT AA: {len(bad)}, e.g. {bad[:3]}'}",
            flush=True,
        )
        ok &= not bad

        updates = Updates(animals)
        warm = updates.batch("WARM", 30)
        for port in (base_port, ours_port):
            send(port, warm, 1)
        updates.apply(warm)
        sent = len(registrations) + len(warm)

        rates = {(who, n): [] for who in ("baseline", "ours") for n in (1, args.connections)}
        cpu = {key: [] for key in rates}  # CPU seconds of the receiving process per message
        all_acks = []
        for run in range(args.runs):
            for connections in (1, args.connections):
                batch = updates.batch(f"R{run}C{connections}", args.messages)
                for who, port, proc in (("baseline", base_port, base), ("ours", ours_port, ours)):
                    cpu_before = harness.cpu_seconds(proc.pid)
                    rate, acks = send(port, batch, connections)
                    cpu[(who, connections)].append((harness.cpu_seconds(proc.pid) - cpu_before) / len(batch))
                    rates[(who, connections)].append(rate)
                    if who == "ours":
                        all_acks += acks
                        updates.apply(batch)
                        sent += len(batch)
                print(
                    f"  run {run + 1}: {connections} connection{'s' if connections > 1 else ' '}"
                    f"  baseline {rates[('baseline', connections)][-1]:7.1f}/s   ours"
                    f" {rates[('ours', connections)][-1]:7.1f}/s",
                    flush=True,
                )

        os.environ["DATABASE_URL"] = db.url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetclinic.settings")
        os.environ["VAR_DIR"] = str(workdir / "var")
        import django

        django.setup()
        wrong, processed, expected = database_check(updates.animals, sent)
        bad = not_aa(all_acks)

        print()
        print(
            f"HL7 ADT^A08 updates, ACK awaited for each; PostgreSQL; {args.animals:,} animals;"
            f" {args.messages:,} messages"
            f" per run; {args.runs} runs: median [min–max]"
        )
        columns = (1, args.connections)
        rows = []
        for who, label in (
            ("baseline", "baseline: bare MLLP + hl7apy parse, no DB"),
            ("ours", "VetPACS manage.py hl7_listener"),
        ):
            rows.append([label] + [harness.span(rates[(who, n)], ".1f") + "/s" for n in columns])
        ratios = {
            n: statistics.median(rates[("ours", n)]) / statistics.median(rates[("baseline", n)])
            for n in columns
        }
        rows.append(["ratio ours / baseline (medians)"] + [f"{ratios[n]:.2f}" for n in columns])
        for who in ("baseline", "ours"):
            rows.append(
                [f"  CPU of the process per message ({who})"]
                + [f"{1000 * statistics.median(cpu[(who, n)]):.1f} ms" for n in columns]
            )
        print(harness.table(["receiver", "1 connection", f"{args.connections} connections"], rows, indent=""))
        print()
        one = statistics.median(rates[("ours", 1)])
        for n in columns:
            what = f"ours / baseline, {n} connection{'s' if n > 1 else ''}"
            print(
                harness.target(
                    what, f"{ratios[n]:.3f}", f"at least {TARGET_RATIO}", ratios[n] >= TARGET_RATIO
                )
            )
        print(
            harness.target(
                "messages/s on one connection", f"{one:.1f}/s", f"at least {TARGET_ONE}", one >= TARGET_ONE
            )
        )
        print(
            "every ACK AA for its own control id:"
            f" {'yes' if not bad else f'NO, {len(bad)} not, e.g. {bad[:3]}'}"
            f" ({len(all_acks):,} timed A08s)"
        )
        print(
            f"database: {len(updates.animals) - len(wrong):,}/{len(updates.animals):,} animals have the"
            " last name, phone"
            f" and weight sent{'' if not wrong else f' (wrong: {wrong[:5]})'};"
            f" {processed:,}/{expected:,} messages"
            f" logged as processed"
        )
        ok &= not bad and not wrong and processed == expected
    finally:
        harness.stop_all()
        harness.cleanup([db], workdir)
        print(f"total {time.perf_counter() - began:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
