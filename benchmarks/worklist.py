"""Modality Worklist latency: our listener answering from the database against dcmtk's wlmscpfs.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python benchmarks/worklist.py \
        [--sizes 10000,100000] [--queries 200] [--wl-files 1000,10000] [--diagnose] [--keep]

For each size it creates a throw-away database (PostgreSQL next to DATABASE_URL's, else a
temporary SQLite file), migrates it and fills it by bulk inserts with that many orders over a
year: six months past (completed, reported or cancelled), today's (scheduled or arrived) and six
months ahead (scheduled), for animals with owners, species and breeds. Each gets its own
`manage.py dicom_listener`. The stations scale with the volume (each does ~9 exams a day, the
issue's "10-match query"), so that matches per query stay alike between sizes; they are printed.

Two kinds of query, the return keys of a real modality (the veterinary ones included):
- typical: Modality + Scheduled Station AE Title + today's Scheduled Procedure Step Start Date;
- name: PatientName=<owner family name>* (or <family>^<first letters of the animal>*);
each (a) as one dcmtk `findscu -W` process per query (wall time of the process: its start, the
association, the C-FIND), (b) as query files sent by one findscu process over one association
(time per C-FIND from findscu's own log, request sent to final response) and (c) over an open
pynetdicom association (time per C-FIND until its final status).

The baseline, in the same invocation: dcmtk's `wlmscpfs` serving the open orders nearest to
today of the largest database as .wl files (one DICOM file per worklist item, written from the
same `worklist_item` data set our listener answers with), 1,000 and 10,000 of them, asked the
same queries by the same clients. wlmscpfs reads every file for every query, so at 10,000 files
it gets fewer queries (the count is printed). Also measured: an empty wlmscpfs (what the clients
cost by themselves), and both servers with Nagle's algorithm left on. Elsewhere TCP_NODELAY is
set in the dcmtk tools (they read it from the environment) and on pynetdicom's socket: wlmscpfs
pays ~80 ms a query without it, and the baseline should be its best.

All servers run at once and take turns, ten queries at a time, so that whatever else the
machine does falls on all of them alike. It prints p50/p95 per server, kind and client, then
the issue's targets as figures, ratios and "met" / "not met" (never asserted): our p50 at the
largest size against 1/5 of wlmscpfs's at 1,000 files (findscu against findscu, pynetdicom
against pynetdicom), and our p50 growth from the smallest to the largest size (< 1.5x).
--diagnose adds EXPLAIN ANALYZE of the worklist queries (PostgreSQL) and where one C-FIND's work
goes, measured in this process.
"""

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402
from benchmarks.harness import HOST, PYTHON, ROOT, free_port, host_busy, port_open  # noqa: E402

FINDSCU = "/usr/bin/findscu"  # .venv/bin has pynetdicom's findscu under the same name
WLMSCPFS = "/usr/bin/wlmscpfs"
OUR_AE = "VETPACS"
WLM_AE = "WLMSCPFS"  # wlmscpfs answers for the AE titles named by subdirectories of -dfp
EXAMS_PER_STATION_DAY = 9
TYPES = [("DX", "DRROOM", "X-ray room"), ("US", "USROOM", "Scan room"), ("CT", "CTROOM", "CT suite")]

# Owners' family names: generated from parts (so that there are as many distinct ones as the
# size needs and a name query finds a handful of animals), plus real ones, accents included.
STARTS = [
    "Har",
    "Ok",
    "Ross",
    "Kow",
    "Dub",
    "Jen",
    "Mur",
    "Wal",
    "Ash",
    "Brad",
    "Carr",
    "Dal",
    "Ell",
    "Fair",
    "Gold",
    "Hal",
    "Ing",
    "Kel",
    "Lang",
    "Mar",
    "Nor",
    "Pem",
    "Red",
    "Stan",
    "Thorn",
    "Whit",
    "Wood",
    "Black",
    "Brook",
    "Crom",
]
MIDDLES = ["", "ing", "er", "a", "el", "ow", "en", "ley", "ford", "bur", "ham", "wick", "es", "ton", "dale"]
ENDS = [
    "",
    "ley",
    "son",
    "ton",
    "ford",
    "well",
    "by",
    "wood",
    "field",
    "man",
    "er",
    "sen",
    "ski",
    "ard",
    "ett",
    "ins",
    "ham",
    "more",
    "ridge",
    "worth",
    "croft",
    "stone",
    "hurst",
    "combe",
    "wright",
]
REAL_FAMILIES = [
    "García",
    "Müller",
    "Nguyen",
    "Okafor",
    "Schmidt",
    "Kowalski",
    "Dubois",
    "Jensen",
    "O'Brien",
    "Núñez",
    "Søndergaard",
    "Lefèvre",
    "Rossi",
    "Murphy",
    "Smith",
    "Jones",
    "Taylor",
    "Evans",
]
GIVEN = harness.GIVEN + ["Ada", "Noor", "Ewan", "Priya", "Jo", "Sam"]
MORE_PETS = "Bonnie Archie Coco Dexter Ellie Fudge Gizmo Honey Indie Jasper Kiki Loki Mabel Nemo Olive Pippin"
PETS = harness.PETS + (MORE_PETS + " Quincy Rosie Skye Tilly").split()
VETS = [
    "Okafor^Ada",
    "Hartley^Jo",
    "Nguyen^Linh",
    "Rossi^Marco",
    "Jensen^Lars",
    "Murphy^Sean",
    "Patel^Priya",
    "",
]
REASONS = [
    "Coughing for two weeks",
    "Lame left hind since Tuesday",
    "Vomiting, suspected foreign body",
    "Heart murmur grade III/VI",
    "Pre-anaesthetic check",
    "Follow-up of fracture repair",
    "Hip dysplasia screening",
    "Abdominal mass on palpation",
    "Metastasis check",
    "Dyspnoea",
    "",
]
# species key: (share of patients, typical weight kg)
SPECIES = {"dog": (0.62, 22.0), "cat": (0.30, 4.5), "rabbit": (0.05, 2.0), "ferret": (0.03, 1.2)}

# What a modality asks (tests/test_worklist_dicom.py's DR room query): its station, modality and
# today, and empty return keys for what it fills in, the veterinary attributes included.
RETURN_KEYS = [
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepID",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
    "ScheduledProcedureStepSequence[0].ScheduledProtocolCodeSequence",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientWeight",
    "PatientSpeciesDescription",
    "PatientSpeciesCodeSequence",
    "PatientBreedDescription",
    "PatientBreedCodeSequence",
    "PatientSexNeutered",
    "ResponsiblePerson",
    "ResponsiblePersonRole",
    "ResponsibleOrganization",
    "OtherPatientIDsSequence",
    "AccessionNumber",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "StudyInstanceUID",
    "ReferringPhysicianName",
]
STEP_KEYS_EMPTY = [
    "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
    "ScheduledProcedureStepSequence[0].Modality",
    "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
]


# --- filling ------------------------------------------------------------------------------------


def families_make(count, rng):
    names = sorted({f"{s}{m}{e}" for s in STARTS for m in MIDDLES for e in ENDS if len(f"{s}{m}{e}") >= 4})
    rng.shuffle(names)
    names = REAL_FAMILIES + [n for n in names if n not in REAL_FAMILIES]
    if count > len(names):
        names += [f"{n}{k}" for k in range(2, 2 + count // len(names)) for n in names]  # rare: enormous sizes
    return names[:count]


def stations_make(orders):
    """As many stations as give each ~EXAMS_PER_STATION_DAY orders a day: DX, US, CT as 3:2:1."""
    from imaging.models import Modality

    total = max(3, round(orders / 365 / EXAMS_PER_STATION_DAY))
    counts = {"DX": max(1, total // 2), "US": max(1, total // 3)}
    counts["CT"] = max(1, total - counts["DX"] - counts["US"])
    rows = []
    for modality, title, location in TYPES:
        for n in range(1, counts[modality] + 1):
            suffix = "" if n == 1 else str(n)
            rows.append(
                Modality(
                    ae_title=f"{title}{suffix}",
                    host=HOST,
                    modality_type=modality,
                    station_name=f"{modality}{n}",
                    location=location,
                )
            )
    return Modality.objects.bulk_create(rows)


def fill(orders_n, rng, today):
    """Owners, animals and orders as the services would have written them, by bulk inserts.

    Every order carries what order_create gives it (modality type of its procedure, its
    procedure's duration, a station of that modality, accession number, requested procedure
    and step IDs from its primary key, a Study Instance UID as study_instance_uid_new makes
    them; the weight on the day also in the animal's weight history, as weight_record does),
    then the status the services would have moved it to. Not written: the audit log and the
    status history (nothing the worklist reads). Patient.dicom_name_key is what
    patients/search.py writes (checked below on a sample).
    """
    from django.conf import settings
    from django.core.management.color import no_style
    from django.db import connection, transaction
    from django.utils.timezone import get_current_timezone, make_aware

    from imaging.models import ImagingOrder, Modality, Procedure
    from imaging.orders.services import accession_number, study_instance_uid_new
    from patients.models import Breed, Owner, Ownership, Patient, Species, WeightRecord
    from patients.vocabulary import rows as vocabulary_rows

    t0 = time.perf_counter()
    tz = get_current_timezone()
    Status = ImagingOrder.Status
    stations = stations_make(orders_n)
    by_type = {}
    for station in stations:
        by_type.setdefault(station.modality_type, []).append(station)
    keys = {row["key"]: (row["scheme"], row["code"]) for row in vocabulary_rows("species.csv")}
    species = {key: Species.objects.get(scheme=keys[key][0], code=keys[key][1]) for key in SPECIES}
    breeds = {}
    for key, sp in species.items():
        pool = list(Breed.objects.filter(species=sp, active=True).order_by("name"))
        breeds[key] = rng.sample(pool, min(25, len(pool)))
    procedures = {}  # (species key, modality) -> procedures the species may have
    for procedure in Procedure.objects.filter(active=True, modality_type__in=list(by_type)).prefetch_related(
        "species"
    ):
        allowed = {s.pk for s in procedure.species.all()}
        for key, sp in species.items():
            if not allowed or sp.pk in allowed:
                procedures.setdefault((key, procedure.modality_type), []).append(procedure)

    patients_n = max(10, orders_n // 3)
    owners_n = max(10, patients_n * 3 // 4)
    families = families_make(max(5, owners_n // 3), rng)
    now_ = datetime.now(tz)

    owners = []
    for pk in range(1, owners_n + 1):
        family = rng.choice(families)
        if rng.random() < 0.02:
            kind = rng.choice(["Kennels", "Rescue", "Stables"])
            owners.append(
                Owner(
                    pk=pk,
                    kind=Owner.Kind.ORGANISATION,
                    organisation_name=f"{family} {kind}",
                    phone=f"01632 {960000 + pk % 40000:06d}",
                )
            )
        else:
            owners.append(
                Owner(pk=pk, family_name=family, given_name=rng.choice(GIVEN), mobile=f"07700 {pk:06d}")
            )
    Owner.objects.bulk_create(owners, batch_size=5000)

    species_keys, species_weights = list(SPECIES), [v[0] for v in SPECIES.values()]
    patients, ownerships, patient_species = [], [], {}
    for pk in range(1, patients_n + 1):
        key = rng.choices(species_keys, species_weights)[0]
        owner = owners[rng.randrange(owners_n)]
        coded = rng.random()
        patient = Patient(
            pk=pk,
            patient_id=f"{settings.PATIENT_ID_PREFIX}{pk:06d}",
            name=rng.choice(PETS),
            species=species[key],
            breed=rng.choice(breeds[key]) if coded < 0.7 and breeds[key] else None,
            breed_text="Crossbreed" if 0.7 <= coded < 0.9 else "",
            sex=rng.choice("MFFMO"),
            neutered=rng.choice(["ALTERED", "ALTERED", "UNALTERED", ""]),
            birth_date=(today - timedelta(days=rng.randint(60, 5000))) if rng.random() < 0.9 else None,
            microchip=f"985141{pk:09d}" if rng.random() < 0.8 else "",
        )
        patient.dicom_name_key = f"{owner.dicom_family_name}^{patient.name}".upper()[:130]
        patients.append(patient)
        patient_species[pk] = key
        ownerships.append(Ownership(patient_id=pk, owner_id=owner.pk, is_primary=True))
        if rng.random() < 0.1:
            other = owners[rng.randrange(owners_n)]
            if other.pk != owner.pk:
                ownerships.append(Ownership(patient_id=pk, owner_id=other.pk, role=Ownership.Role.CO_OWNER))
    Patient.objects.bulk_create(patients, batch_size=5000)
    Ownership.objects.bulk_create(ownerships, batch_size=5000)

    # Every station has the same number of orders each day (the "10-match query"), in
    # 40-minute slots from 08:00; the primary keys follow the booking time, as they would.
    specs, weights = [], {}
    for i in range(orders_n):
        patient = rng.randrange(1, patients_n + 1)
        key = patient_species[patient]
        day_offset = -182 + i % 365
        station = stations[(i // 365) % len(stations)]
        slot = i // (365 * len(stations))
        choices = procedures.get((key, station.modality_type)) or procedures[("dog", station.modality_type)]
        procedure = rng.choice(choices)
        day = today + timedelta(days=day_offset)
        start = make_aware(datetime.combine(day, datetime.min.time()), tz) + timedelta(
            minutes=8 * 60 + 40 * slot
        )
        created = start - timedelta(days=rng.randint(0, 30), minutes=rng.randint(0, 600))
        if created > now_:  # booked far ahead: some time in the last two months
            created = now_ - timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 600))
        if day_offset < 0:
            roll = rng.random()
            status = Status.CANCELLED if roll < 0.08 else Status.COMPLETED if roll < 0.4 else Status.REPORTED
            changed = start + timedelta(
                minutes=procedure.duration_minutes + (2880 if status == Status.REPORTED else 0)
            )
            if status == Status.CANCELLED:
                changed = max(created, start - timedelta(hours=rng.randint(1, 48)))
        elif day_offset == 0:
            status = Status.ARRIVED if rng.random() < 0.4 else Status.SCHEDULED
            changed = (
                max(created, min(now_, start - timedelta(minutes=20)))
                if status == Status.ARRIVED
                else created
            )
        else:
            status, changed = Status.SCHEDULED, created
        weight = None
        if rng.random() < 0.5:
            weight = Decimal(str(round(SPECIES[key][1] * rng.uniform(0.6, 1.5), 1))).quantize(
                Decimal("0.001")
            )
            record = WeightRecord(patient_id=patient, kg=weight, measured_on=day, recorded_at=created)
            weights.setdefault((patient, weight, day), record)  # weight_record: once a day per weight
        specs.append((created, rng.random(), patient, procedure, station, start, weight, status, changed))
    specs.sort(key=lambda spec: spec[:2])
    rows = []
    for pk, (created, _, patient, procedure, station, start, weight, status, changed) in enumerate(
        specs, start=1
    ):
        rows.append(
            ImagingOrder(
                pk=pk,
                patient_id=patient,
                procedure=procedure,
                station=station,
                modality_type=procedure.modality_type,
                scheduled_start=start,
                duration_minutes=procedure.duration_minutes,
                reason=rng.choice(REASONS),
                referring_vet=rng.choice(VETS),
                priority=rng.choices(["ROUTINE", "HIGH", "STAT"], [90, 8, 2])[0],
                weight_kg=weight,
                status=status,
                status_changed=changed,
                accession_number=accession_number(pk),
                requested_procedure_id=f"RP{pk}"[:16],
                scheduled_step_id=f"SPS{pk}"[:16],
                study_instance_uid=study_instance_uid_new(),
                images_received_at=(start + timedelta(minutes=10))
                if status in (Status.COMPLETED, Status.REPORTED)
                else None,
                created=created,
                updated=changed,
            )
        )
    with transaction.atomic():
        ImagingOrder.objects.bulk_create(rows, batch_size=5000)
        WeightRecord.objects.bulk_create(list(weights.values()), batch_size=5000)
    with connection.cursor() as cursor:
        models = [Owner, Patient, Ownership, ImagingOrder, WeightRecord, Modality]
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)
        if connection.vendor == "postgresql":
            # Statistics for the planner, and the visibility map a real table has after autovacuum.
            cursor.execute("VACUUM ANALYZE")
        else:
            cursor.execute("ANALYZE")
    fill_check(rng)
    return {
        "seconds": time.perf_counter() - t0,
        "stations": stations,
        "patients": patients_n,
        "owners": owners_n,
        "families": len(families),
    }


def fill_check(rng):
    """The bulk rows agree with what the services write (raises if not; a data check, not timing)."""
    from django.db.models import F

    from imaging.models import ImagingOrder
    from imaging.orders.services import accession_number
    from patients.models import Patient
    from patients.search import dicom_name_key

    ids = list(Patient.objects.values_list("pk", flat=True))
    sample = Patient.objects.filter(pk__in=rng.sample(ids, min(300, len(ids)))).prefetch_related(
        "ownerships__owner"
    )
    wrong = [p.pk for p in sample if p.dicom_name_key != dicom_name_key(p)]
    if wrong:
        raise RuntimeError(f"dicom_name_key differs from patients/search.py's for patients {wrong[:5]}")
    for order in ImagingOrder.objects.select_related("procedure", "station").order_by("?")[:300]:
        expected = (
            accession_number(order.pk),
            f"RP{order.pk}"[:16],
            f"SPS{order.pk}"[:16],
            order.procedure.modality_type,
        )
        if (
            order.accession_number,
            order.requested_procedure_id,
            order.scheduled_step_id,
            order.modality_type,
        ) != expected:
            raise RuntimeError(f"order {order.pk} is not what order_create would write")
        if order.station.modality_type != order.procedure.modality_type:
            raise RuntimeError(f"order {order.pk}: station of another modality")
    if ImagingOrder.objects.exclude(duration_minutes=F("procedure__duration_minutes")).exists():
        raise RuntimeError("an order's duration is not its procedure's")


# --- queries ------------------------------------------------------------------------------------


def typical_query(station, day):
    return [
        f"ScheduledProcedureStepSequence[0].ScheduledStationAETitle={station.ae_title}",
        f"ScheduledProcedureStepSequence[0].Modality={station.modality_type}",
        f"ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate={day:%Y%m%d}",
    ] + RETURN_KEYS


def name_query(pattern):
    return [f"PatientName={pattern}"] + STEP_KEYS_EMPTY + [k for k in RETURN_KEYS if k != "PatientName"]


def queries_make(n, stations, today, rng):
    """(calling AE, findscu keys) lists: typical queries round the stations, name queries for
    families with open orders in the coming days (so that the worklist files hold them too)."""
    from imaging.models import ImagingOrder
    from patients.models import Owner

    typical = [
        (station.ae_title, typical_query(station, today))
        for station in (stations[i % len(stations)] for i in range(n))
    ]
    # One row per order, its animal's primary owner joined (no long IN list: SQLite refuses them).
    soon = (
        ImagingOrder.objects.filter(
            status__in=ImagingOrder.WORKLIST_STATUSES,
            patient__ownerships__is_primary=True,
            scheduled_start__date__lte=today + timedelta(days=3),
        )
        .order_by("scheduled_start", "id")
        .values_list(
            "patient__ownerships__owner__kind",
            "patient__ownerships__owner__family_name",
            "patient__ownerships__owner__organisation_name",
            "patient__name",
        )[:2000]
    )
    candidates = []
    for kind, family_name, organisation_name, animal in soon:
        family = (
            organisation_name if kind == Owner.Kind.ORGANISATION else family_name
        )  # Owner.dicom_family_name
        if family.isascii() and family.replace("'", "").isalpha() and animal.isascii():
            candidates.append((family, animal))
    rng.shuffle(candidates)
    name = []
    for i in range(n):
        family, animal = candidates[i % len(candidates)]
        pattern = f"{family}*" if i % 10 < 7 else f"{family}^{animal[:2]}*"
        name.append((stations[i % len(stations)].ae_title, name_query(pattern)))
    return {"typical": typical, "name": name}


def key_dataset(keys):
    """The pynetdicom identifier for findscu -k keys (Key, Key=value, Seq[0].Key[=value])."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataset import Dataset

    ds = Dataset()
    for key in keys:
        path, _, value = key.partition("=")
        target = ds
        parts = path.split(".")
        for part in parts[:-1]:
            keyword = part.split("[")[0]
            if keyword not in target or not target[keyword].value:
                setattr(target, keyword, [Dataset()])
            target = target[keyword].value[0]
        keyword = parts[-1]
        vr = dictionary_VR(tag_for_keyword(keyword))
        if vr == "SQ":
            setattr(target, keyword, [])
        else:
            target.add_new(tag_for_keyword(keyword), vr, value or None)
    return ds


# --- servers ------------------------------------------------------------------------------------


class Listener:
    """Our `manage.py dicom_listener` on the benchmark database."""

    def __init__(self, workdir, env, label):
        self.label, self.env = label, env
        self.port = free_port()
        self.log = Path(workdir) / f"listener-{label}.log"
        self.called = OUR_AE
        self.proc = None

    def __enter__(self):
        self.log.write_text("")
        args = [
            PYTHON,
            "manage.py",
            "dicom_listener",
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--ae-title",
            OUR_AE,
        ]
        # Ready when it says so (a probe connection would leave an acceptor waiting for a request).
        self.proc = harness.launch(
            args,
            env=self.env,
            log=self.log,
            what="the listener",
            ready=lambda: f"DICOM listener {OUR_AE} on" in self.log.read_text(),
        )
        return self

    def __exit__(self, *exc):
        harness.stop(self.proc)


class Wlmscpfs:
    """dcmtk's file-based worklist SCP over a directory of .wl files (forks per association,
    its default). ``nodelay``: TCP_NODELAY=1 in its environment, which dcmtk reads: without it
    Nagle's algorithm and the peer's delayed ACK add tens of milliseconds to each query."""

    def __init__(self, workdir, datadir, files, nodelay=True):
        self.label = f"wlmscpfs {files} files{'' if nodelay else ' stock'}"
        self.nodelay = nodelay
        self.datadir = datadir
        self.port = free_port()
        self.log = Path(workdir) / f"wlmscpfs-{files}.log"
        self.called = WLM_AE
        self.proc = None

    def __enter__(self):
        self.log.write_text("")
        args = [WLMSCPFS, "-dfp", str(self.datadir), "-dhl", "-csk", "-ll", "warn", str(self.port)]
        # It serves each connection in a forked child, so a probe costs it nothing lasting.
        self.proc = harness.launch(
            args,
            env=dcmtk_env(self.nodelay),
            log=self.log,
            timeout=30,
            what="wlmscpfs",
            ready=lambda: port_open(self.port),
        )
        return self

    def __exit__(self, *exc):
        harness.stop(self.proc)


def dcmtk_env(nodelay):
    env = os.environ.copy()
    env.pop("TCP_NODELAY", None)
    if nodelay:
        env["TCP_NODELAY"] = "1"
    return env


def wl_files_write(root, orders_n_max):
    """The open orders nearest to today (today first), one .wl file each, from worklist_elements:
    ``root/all`` holds ``orders_n_max`` files; smaller sets link the first ones."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    from imaging.dicom.records.datasets import TEXT_VRS, WORKLIST_COLUMNS, worklist_elements
    from imaging.orders.worklist import worklist_items

    every = worklist_items(identifier=Dataset())
    ids = list(every.filter(scheduled_start__gte=_today_start()).values_list("pk", flat=True)[:orders_n_max])
    orders = []
    for chunk in range(0, len(ids), 500):  # 10,000 ids at once is too long a query for SQLite
        orders += list(every.filter(pk__in=ids[chunk : chunk + 500]).values(*WORKLIST_COLUMNS))
    folder = root / "all"
    folder.mkdir(parents=True)
    paths = []
    for n, order in enumerate(orders):
        ds = worklist_elements(order).dataset()  # worklist_item's data set, from the row on_find reads
        if any(e.VR in TEXT_VRS and not str(e.value or "").isascii() for e in ds.iterall()):
            ds.SpecificCharacterSet = "ISO_IR 192"
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ModalityWorklistInformationFind
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        path = folder / f"item{n:06d}.wl"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths, orders


def wl_dir(root, paths, count):
    """-dfp directory for ``count`` files: <root>/wl-<count>/<AE>/ with dcmtk's lockfile."""
    base = root / f"wl-{count}"
    folder = base / WLM_AE
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()  # dcmtk 3.6.7 refuses to work without it
    for path in paths[:count]:
        os.link(path, folder / path.name)
    return base


def _today_start():
    from django.utils.timezone import get_current_timezone, make_aware

    tz = get_current_timezone()
    return make_aware(datetime.combine(datetime.now(tz).date(), datetime.min.time()), tz)


# --- clients ------------------------------------------------------------------------------------


def time_findscu(server, queries, outdir, nodelay=True):
    """One findscu -W process per query: wall time of the process; matches counted from its
    output (-X writes one rsp file per pending response)."""
    env = dcmtk_env(nodelay)
    times, matches, failures = [], [], 0
    for n, (calling, keys) in enumerate(queries):
        out = outdir / f"{server.label.replace(' ', '-')}-{n}"
        out.mkdir(parents=True)
        args = [
            FINDSCU,
            "-W",
            "-X",
            "-od",
            str(out),
            "-aet",
            calling,
            "-aec",
            server.called,
            HOST,
            str(server.port),
        ]
        for key in keys:
            args += ["-k", key]
        t0 = time.perf_counter()
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
        times.append(1000 * (time.perf_counter() - t0))
        failures += done.returncode != 0 or "Error" in done.stderr
        matches.append(sum(1 for _ in out.glob("rsp*.dcm")))
        shutil.rmtree(out)
    return {"times": times, "matches": matches, "failures": failures}


FINDSCU_LOG = """\
log4cplus.rootLogger = INFO, console
log4cplus.appender.console = log4cplus::ConsoleAppender
log4cplus.appender.console.layout = log4cplus::PatternLayout
log4cplus.appender.console.layout.ConversionPattern = %D{%H:%M:%S.%Q} %m%n
"""


def time_findscu_association(server, queries, outdir, nodelay=True):
    """The queries as files, sent by ONE findscu -W process over one association (findscu
    sends each file as a C-FIND in turn): time per C-FIND from findscu's own log, from
    "Sending Find Request" to "Received Final Find Response" (microsecond timestamps, a log
    config of ours). What a modality that keeps its association sees, with dcmtk's client
    instead of pynetdicom's, and without the ~40 ms of starting a findscu process."""
    env = dcmtk_env(nodelay)
    folder = outdir / f"{server.label.replace(' ', '-')}-assoc-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    config = folder / "log.cfg"
    config.write_text(FINDSCU_LOG)
    files = []
    for n, (_calling, keys) in enumerate(queries):
        ds = key_dataset(keys)
        path = folder / f"q{n:04d}.dcm"
        ds.save_as(path, implicit_vr=False, little_endian=True)  # a bare data set: findscu reads it as such
        files.append(str(path))
    args = [
        FINDSCU,
        "-W",
        "-lc",
        str(config),
        "-aet",
        queries[0][0],
        "-aec",
        server.called,
        HOST,
        str(server.port),
        *files,
    ]
    done = subprocess.run(args, capture_output=True, timeout=600, env=env)
    shutil.rmtree(folder)
    times, matches, failures, sent, found = [], [], 0, None, 0
    for line in (done.stdout + done.stderr).decode("utf-8", "replace").splitlines():
        stamp, _, text = line.partition(" ")
        if text.startswith("Sending Find Request"):
            sent, found = _log_seconds(stamp), 0
        elif text.startswith("Find Response:") and "(Pending" in text:
            found += 1
        elif text.startswith("Received Final Find Response") and sent is not None:
            spent = _log_seconds(stamp) - sent
            times.append(1000 * (spent + 86400 if spent < 0 else spent))  # past midnight
            matches.append(found)
            failures += "(Success)" not in text
            sent = None
    failures += len(queries) - len(times)  # queries never answered
    return {"times": times, "matches": matches, "failures": failures}


def _log_seconds(stamp):
    """Seconds since midnight of a findscu log time stamp, HH:MM:SS.mmm.uuu (%Q)."""
    hms, _, fraction = stamp.partition(".")
    hours, minutes, seconds = (int(v) for v in hms.split(":"))
    return hours * 3600 + minutes * 60 + seconds + float("0." + fraction.replace(".", ""))


def time_pynetdicom(server, queries, nodelay=True):
    """One association for the queries; time per C-FIND until its final status.
    ``nodelay``: Nagle's algorithm off on our socket (pynetdicom leaves it on).

    pynetdicom's requestor can lose a response that comes back at once (from an empty
    wlmscpfs): its association thread, not quite paused, takes it off the queue ("Received
    unexpected C-FIND service message") and send_c_find waits for the DIMSE timeout. So that
    thread is kept from taking DIMSE messages (we serve no requests); a response lost all the
    same is counted as a failure, not timed, and the next query gets a new association."""
    from pynetdicom import AE
    from pynetdicom.sop_class import ModalityWorklistInformationFind

    ae = AE(ae_title=queries[0][0])
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.dimse_timeout = 20
    assoc = None
    times, matches, failures = [], [], 0
    try:
        for _, keys in queries:
            identifier = key_dataset(keys)
            if assoc is None or not assoc.is_established:
                assoc = ae.associate(HOST, server.port, ae_title=server.called)
                if not assoc.is_established:
                    raise RuntimeError(f"{server.label}: pynetdicom could not associate")
                if nodelay:
                    assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                assoc.dimse.get_msg = _responses_for_caller_only(assoc)
            found, final = 0, None
            t0 = time.perf_counter()
            for status, _ in assoc.send_c_find(identifier, ModalityWorklistInformationFind):
                code = getattr(status, "Status", None)
                if code in (0xFF00, 0xFF01):
                    found += 1
                else:
                    final = code
            spent = 1000 * (time.perf_counter() - t0)
            failures += final != 0x0000
            if final is not None:  # an answer, success or not
                times.append(spent)
                matches.append(found)
    finally:
        if assoc is not None and assoc.is_established:
            assoc.release()
        ae.shutdown()
    return {"times": times, "matches": matches, "failures": failures}


def _responses_for_caller_only(assoc):
    get_msg = assoc.dimse.get_msg

    def guarded(block=False):
        if threading.current_thread() is assoc:  # the association's own reactor loop
            return None, None
        return get_msg(block)

    return guarded


def summary(result):
    times = result["times"]
    if not times:
        return {
            "n": 0,
            "p50": float("nan"),
            "p95": float("nan"),
            "matches": float("nan"),
            "failures": result["failures"],
        }
    return {
        "n": len(times),
        "p50": statistics.median(times),
        "p95": harness.percentile(times, 0.95),
        "matches": statistics.mean(result["matches"]),
        "failures": result["failures"],
    }


class Entry:
    """One row group of the table: a server, the queries it gets, the client settings."""

    def __init__(self, label, server, queries, n, nodelay=True):
        self.label, self.server, self.nodelay = label, server, nodelay
        self.queries = {kind: items[:n] for kind, items in queries.items()}
        self.n = min(n, *(len(items) for items in queries.values()))
        self.raw = {}
        self.busy = [0, 0]

    def add(self, kind, client, result):
        raw = self.raw.setdefault((kind, client), {"times": [], "matches": [], "failures": 0})
        raw["times"] += result["times"]
        raw["matches"] += result["matches"]
        raw["failures"] += result["failures"]

    def summary(self):
        out = {key: summary(raw) for key, raw in self.raw.items()}
        out[("typical", "host")] = 100 * self.busy[0] / max(1, self.busy[1])
        return out


def measure(entries, outdir, block=10, warmup=2):
    """Every entry's queries in blocks of ``block``, the entries taking turns (in a rotating
    order), so that whatever else the machine does falls on all of them alike. A pynetdicom
    association per block (its set-up is not timed); a few untimed queries first."""
    for entry in entries:
        for items in entry.queries.values():
            time_findscu(entry.server, items[:warmup], outdir, entry.nodelay)
            time_findscu_association(entry.server, items[:warmup], outdir, entry.nodelay)
            time_pynetdicom(entry.server, items[:warmup], entry.nodelay)
    rounds = max(-(-entry.n // block) for entry in entries)
    for round_ in range(rounds):
        turn = entries[round_ % len(entries) :] + entries[: round_ % len(entries)]
        for entry in turn:
            low, high = round_ * block, min(entry.n, (round_ + 1) * block)
            if low >= high:
                continue
            for kind, items in entry.queries.items():
                before = host_busy()
                entry.add(kind, "findscu", time_findscu(entry.server, items[low:high], outdir, entry.nodelay))
                entry.add(
                    kind,
                    "findscu 1 as",
                    time_findscu_association(entry.server, items[low:high], outdir, entry.nodelay),
                )
                entry.add(kind, "pynetdicom", time_pynetdicom(entry.server, items[low:high], entry.nodelay))
                after = host_busy()
                if kind == "typical":
                    entry.busy[0] += after[0] - before[0]
                    entry.busy[1] += after[1] - before[1]
        print(f"  round {round_ + 1}/{rounds} done", flush=True)


# --- diagnosis ----------------------------------------------------------------------------------


def diagnose(queries):
    """Where one C-FIND spends its time, measured in this process on the same database: the SQL
    (EXPLAIN ANALYZE on PostgreSQL), turning orders into worklist elements, and picking and
    encoding each answer (what on_find does per match; the sending is not in here)."""
    import cProfile
    import io
    import pstats

    from django.db import connection
    from pydicom.uid import ExplicitVRLittleEndian

    from imaging.dicom.records.datasets import (
        _answer_elements,
        response_keys,
        worklist_answer,
        worklist_elements,
    )
    from imaging.orders.worklist import WORKLIST_ROWS_BY_ID, worklist_matches, worklist_rows

    lines = []
    for kind, items in queries.items():
        identifier = key_dataset(items[0][1])
        if connection.vendor == "postgresql":
            # worklist_rows's two statements: the match, then the rows of those ids.
            matching = worklist_matches(identifier=identifier)
            ids = list(matching)
            rows = WORKLIST_ROWS_BY_ID
            for label, (sql, params) in [
                ("the match", matching.query.sql_with_params()),
                ("the rows by id", (rows.sql, [ids])),
            ]:
                with connection.cursor() as cursor:
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                    plan = [row[0] for row in cursor.fetchall()]
                lines.append(f"  EXPLAIN ANALYZE, {kind} query ({items[0][1][0]}), {label}:")
                lines += ["    " + line for line in plan]
        phases = {
            "worklist_rows (SQL)": [],
            "worklist_elements": [],
            "picking the keys": [],
            "encoding": [],
            "worklist_answer (all three)": [],
            "queries": [],
        }
        for _, keys in items[:50]:
            identifier = key_dataset(keys)
            wanted = response_keys(identifier)
            before = len(connection.queries)
            t0 = time.perf_counter()
            orders = worklist_rows(identifier=identifier)
            t1 = time.perf_counter()
            built = [worklist_elements(order) for order in orders]
            t2 = time.perf_counter()
            answers = [_answer_elements(wanted, item) for item in built]
            t3 = time.perf_counter()
            [answer.encode(implicit_vr=False) for answer in answers]  # Explicit VR Little Endian
            t4 = time.perf_counter()
            [worklist_answer(wanted, order, ExplicitVRLittleEndian) for order in orders]
            t5 = time.perf_counter()
            phases["worklist_rows (SQL)"].append(1000 * (t1 - t0))
            phases["worklist_elements"].append(1000 * (t2 - t1))
            phases["picking the keys"].append(1000 * (t3 - t2))
            phases["encoding"].append(1000 * (t4 - t3))
            phases["worklist_answer (all three)"].append(1000 * (t5 - t4))
            phases["queries"].append(len(connection.queries) - before)
        counts = phases.pop("queries")
        lines.append(
            f"  {kind}: per C-FIND, median of {len(counts)} in this process"
            f" ({statistics.mean(counts):.0f} SQL"
            " statements each): "
            + ", ".join(f"{label} {statistics.median(v):.2f} ms" for label, v in phases.items())
        )
        profile = cProfile.Profile()
        profile.enable()
        for _, keys in items[:50]:
            identifier = key_dataset(keys)
            wanted = response_keys(identifier)
            for order in worklist_rows(identifier=identifier):
                worklist_answer(wanted, order, ExplicitVRLittleEndian)
        profile.disable()
        stream = io.StringIO()
        pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(8)
        body = [line for line in stream.getvalue().splitlines() if line.strip() and line.strip()[0].isdigit()]
        lines.append(
            f"  {kind}: cProfile of 50 queries, top functions by own time (ncalls tottime percall"
            " cumtime percall):"
        )
        lines += ["    " + line.strip().replace(str(ROOT) + "/", "")[:150] for line in body[:8]]
    return "\n".join(lines)


# --- report -------------------------------------------------------------------------------------


def row(label, kind, client, s):
    return [
        label,
        kind,
        client,
        f"{s['p50']:.1f}",
        f"{s['p95']:.1f}",
        s["n"],
        f"{s['matches']:.1f}",
        s["failures"],
    ]


def targets(ours, baseline, floor, sizes, wl_files):
    lines = []
    big, small = ours.get(sizes[-1]), ours.get(sizes[0])
    base = baseline.get(min(wl_files)) if wl_files else None
    for kind in ("typical", "name"):
        for client in ("findscu", "findscu 1 as", "pynetdicom"):
            if big and base and (kind, client) in big and (kind, client) in base:
                theirs, mine = base[(kind, client)]["p50"], big[(kind, client)]["p50"]
                note = ""
                if floor and (kind, client) in floor and floor[(kind, client)]["p50"] > theirs / 5:
                    alone = floor[(kind, client)]["p50"]
                    note = f" (the client alone, against an empty wlmscpfs, takes {alone:.1f} ms)"
                figure = (
                    f"ours at {sizes[-1]:,} orders p50 {mine:6.1f} ms; wlmscpfs at {min(wl_files):,} files"
                    f" {theirs:6.1f} ms, / 5 = {theirs / 5:5.1f} ms: ours {theirs / mine:4.1f}x faster"
                )
                lines.append(harness.target(f"{kind} {client}", figure, "5x", mine <= theirs / 5) + note)
    if big and small and sizes[0] != sizes[-1]:
        for kind in ("typical", "name"):
            for client in ("findscu", "findscu 1 as", "pynetdicom"):
                if (kind, client) not in big or (kind, client) not in small:
                    continue
                growth = big[(kind, client)]["p50"] / small[(kind, client)]["p50"]
                figure = (
                    f"p50 {small[(kind, client)]['p50']:6.1f} ms at {sizes[0]:,} ->"
                    f" {big[(kind, client)]['p50']:6.1f} ms at {sizes[-1]:,} orders: {growth:.2f}x"
                )
                lines.append(harness.target(f"{kind} {client}", figure, "< 1.5x", growth < 1.5))
    return lines


def report(entries, ours, baseline, floor, sizes, wl_files, kind, diagnosis):
    results = [(entry.label, entry.summary()) for entry in entries if entry.raw]
    if results:
        print()
        print(
            f"Modality Worklist C-FIND latency, {os.cpu_count()} CPUs, database {kind}."
            " findscu: wall time of one `/usr/bin/findscu -W` process per query (process start and"
            " association"
            " included); findscu 1 as(sociation): one findscu process sending the block's queries as"
            " files over"
            " one association, time per C-FIND from its log; pynetdicom: time per C-FIND until its"
            " final status"
            " over an open association."
            " TCP_NODELAY set in the dcmtk tools and pynetdicom's socket unless the row says Nagle on."
        )
        header = ["server", "kind", "client", "p50 ms", "p95 ms", "n", "matches", "fail"]
        rows = [
            row(label, kind_, client, s)
            for label, result in results
            for (kind_, client), s in result.items()
            if client != "host"
        ]
        print(harness.table(header, rows, left=3))
        print(
            "  matches: pending responses per query (average); fail: queries that did not end in success"
            " (a response pynetdicom lost, see time_pynetdicom, is counted there and not timed)."
            " Host CPU busy (both CPUs, all processes) while each ran its typical queries: "
            + ", ".join(f"{label} {result[('typical', 'host')]:.0f}%" for label, result in results)
        )
        print("Targets (issue 4), p50 against p50, same client:")
        for line in targets(
            {size: e.summary() for size, e in ours.items() if e.raw},
            {count: e.summary() for count, e in baseline.items() if e.raw},
            floor.summary() if floor is not None and floor.raw else None,
            sizes,
            wl_files,
        ):
            print(line)
    if diagnosis:
        print("\nWhere the time goes (largest size, measured in this process):")
        print(diagnosis)


# --- main ---------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="orders in the database, in turn (default 10000,100000)"
    )
    parser.add_argument(
        "--queries", type=int, default=200, help="queries of each kind per client (default 200)"
    )
    parser.add_argument(
        "--wl-files", default="1000,10000", help="worklist files for wlmscpfs, in turn (default 1000,10000)"
    )
    parser.add_argument(
        "--wl-budget",
        type=int,
        default=1000,
        help="above this many files wlmscpfs gets queries x budget / files of each kind,"
        " at least 20 (default 1000)",
    )
    parser.add_argument(
        "--stock-queries",
        type=int,
        default=20,
        help="queries of each kind with Nagle's algorithm left on in the dcmtk tools and pynetdicom,"
        " against our largest size and wlmscpfs's smallest (default 20; 0: skip)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--diagnose", action="store_true", help="EXPLAIN ANALYZE and an in-process profile of on_find's work"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases and the work directory (debugging)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    wl_files = [int(s) for s in args.wl_files.split(",") if s.strip()]
    for tool in (FINDSCU, WLMSCPFS):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} not found: install dcmtk")
    from pynetdicom import _config

    # Our client formats no response for a debug log nobody reads (the same for both servers).
    _config.LOG_RESPONSE_IDENTIFIERS = False

    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="vetpacs-bench-worklist-"))
    rsp = workdir / "rsp"
    databases, first = {}, None
    entries, ours, baseline, floor = [], {}, {}, None
    diagnosis = ""
    try:
        for size in sizes:
            databases[size] = harness.Database(
                os.environ.get("DATABASE_URL", ""), f"worklist_{size}", workdir=workdir
            )
        first = databases[sizes[0]]
        secret = uuid.uuid4().hex * 2
        common = {
            "DEBUG": "false",
            "SECRET_KEY": secret,
            "LOG_LEVEL": "INFO",
            "DICOM_AE_TITLE": OUR_AE,
            "DICOM_ALLOW_ANY_AE": "false",
            "STORAGE_ROOT": str(workdir / "storage"),
        }
        os.environ.update({**common, "DATABASE_URL": first.url})
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetclinic.settings")
        import django

        django.setup()
        from django.db import connection
        from django.utils.timezone import get_current_timezone

        tz = get_current_timezone()
        today = datetime.now(tz).date()
        print(
            f"database: {first.kind}, one per size; today {today} ({tz}); work dir {workdir};"
            f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        rng = random.Random(args.seed)
        queries = {}
        for size in sizes:
            databases[size].migrate_here()
            made = fill(size, rng, today)
            queries[size] = queries_make(
                args.queries, made["stations"], today, random.Random(args.seed + size)
            )
            print(
                f"{size:,} orders: {made['owners']:,} owners ({made['families']:,} family names),"
                f" {made['patients']:,} animals, {len(made['stations'])} stations;"
                f" filled, checked and analysed in {made['seconds']:.1f} s",
                flush=True,
            )
        largest = databases[sizes[-1]]
        largest.use()
        paths = []
        if wl_files:
            t0 = time.perf_counter()
            paths, _ = wl_files_write(workdir / "wl", max(wl_files))
            print(
                f"worklist files: {len(paths):,} written from the open orders nearest to today"
                f" in {time.perf_counter() - t0:.1f} s",
                flush=True,
            )
        for size in sizes:
            env = {**os.environ, **common, "DATABASE_URL": databases[size].url}
            listener = Listener(workdir, env, f"{size}").__enter__()
            entries.append(Entry(f"vetpacs {size:,} orders", listener, queries[size], args.queries))
            ours[size] = entries[-1]
        for count in wl_files:
            n = args.queries if count <= args.wl_budget else max(20, args.queries * args.wl_budget // count)
            server = Wlmscpfs(workdir, wl_dir(workdir / "wl", paths, count), count).__enter__()
            entries.append(Entry(f"wlmscpfs {count:,} files", server, queries[sizes[-1]], n))
            baseline[count] = entries[-1]
        if wl_files:
            # The clients' own cost: a C++ SCP with nothing to read (findscu's process start and
            # dictionary load, the association, one empty C-FIND).
            server = Wlmscpfs(workdir, wl_dir(workdir / "wl", paths, 0), 0).__enter__()
            floor = Entry(
                "wlmscpfs 0 files (client floor)", server, queries[sizes[-1]], min(args.queries, 40)
            )
            entries.append(floor)
        if args.stock_queries:
            entries.append(
                Entry(
                    f"vetpacs {sizes[-1]:,} orders, Nagle on",
                    ours[sizes[-1]].server,
                    queries[sizes[-1]],
                    args.stock_queries,
                    nodelay=False,
                )
            )
            if wl_files:
                count = min(wl_files)
                server = Wlmscpfs(workdir, workdir / "wl" / f"wl-{count}", count, nodelay=False).__enter__()
                entries.append(
                    Entry(
                        f"wlmscpfs {count:,} files, Nagle on",
                        server,
                        queries[sizes[-1]],
                        args.stock_queries,
                        nodelay=False,
                    )
                )
        print(
            f"timing: {', '.join(f'{e.label} x{e.n}' for e in entries)} (each kind, each client),"
            " taking turns",
            flush=True,
        )
        measure(entries, rsp)
        if args.diagnose:
            connection.force_debug_cursor = True
            diagnosis = diagnose(queries[sizes[-1]])
            connection.force_debug_cursor = False
    finally:
        harness.stop_all()
        try:
            report(entries, ours, baseline, floor, sizes, wl_files, first.kind if first else "?", diagnosis)
        except Exception:  # a partial run: say what went wrong, then clean up all the same
            traceback.print_exc()
        harness.cleanup(databases.values(), workdir, keep=args.keep)
        print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
