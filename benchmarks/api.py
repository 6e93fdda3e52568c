"""REST API speed under gunicorn, against a trivial authenticated DRF endpoint on the same server.

    .venv/bin/python benchmarks/api.py [--patients 100000] [--orders 30000] [--runs 3] [--seconds 10]
        [--concurrency 4] [--workers 2] [--threads 4] [--conn-max-age 60] [--no-diagnose] [--keep]

Creates a throw-away PostgreSQL database (next to DATABASE_URL's when it names PostgreSQL, else
on postgres@127.0.0.1:5432), migrates it and fills it by bulk inserts with what the services
would have written: owners (person or organisation, phones, e-mail, the PMS's ids), animals
(species, breeds, sex, neutering, birth date, microchip, weight history, the PMS's ids), a
primary owner each and some co-owners, then the search words and worklist name keys written by
patients/search.py's own ``search_terms_refresh``; imaging orders over a year (past ones
completed, reported or cancelled) and, for the done ones, studies with series and instances.
It creates an API client (scopes ``*``, a rate limit that never throttles) and runs the app under
gunicorn (gthread workers, keep-alive, ``DEBUG=false``, persistent database connections) on a
free port, serving benchmarks/api_server.py: the app's URLs unchanged plus the baseline.

Measured from a concurrent client in this process (``--concurrency`` threads, one keep-alive
connection each, http.client, the connections spread evenly over the workers; requests back to
back):

- baseline: ``GET /bench/ping``, a DRF view with the same API key authentication, scope check
  and throttle as the API, that reads nothing else (like every API request it finds the key
  among the keys its worker verified in the last seconds, integrations/api/clients.py, so
  it sends no SQL at all);
- search: ``GET /api/v1/patients?search=<words>``, a mix of what a PMS looks an animal up by
  (printed with hits per kind; default page size);
- studies: ``GET /api/v1/studies?patient=<id>`` (most of the animals asked about have studies);
- orders: ``POST /api/v1/orders`` with valid bodies (a living animal, a procedure its species may
  have, a time in the next weeks, reason, referring vet, the PMS's order number), each with its
  own ``Idempotency-Key`` as a careful PMS sends them.

Each run measures every endpoint in turn (rotating order, untimed warm-up first) for
``--seconds``, then once more with a single connection (latency without queueing). It prints
req/s, p50 and p95 per endpoint (median of the runs, range in brackets), the ratio to the
baseline's req/s, how busy the machine was, and the issue's targets for list/search (req/s at
least 0.5 of the baseline's, p95 under 50 ms) as "met" / "not met"; it asserts none of them.
Unless --no-diagnose, it then shows where one request's time goes, in this process on the
same database: SQL statements per request and their time, the phases of a request from a
profile, the throttle's own cost at each endpoint's rate, and EXPLAIN ANALYZE of the search.
--keep leaves the database (and --reuse NAME measures it again without filling).
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402
from benchmarks.harness import HOST, host_busy, med, percentile, span, tail  # noqa: E402

CLIENT_NAME = "Bench PMS"
WORKERS = [2]  # gunicorn workers of this run (set in main)
EXTERNAL_SYSTEM = (
    f"api:{CLIENT_NAME}"  # the namespace of this client's own ids (integrations/api/patients.py)
)

# Names, species shares and reasons as the worklist benchmark makes them (many family names, so
# that a name finds a handful of animals; pet names repeat as they do in a clinic).
from benchmarks.worklist import GIVEN, PETS, REASONS, SPECIES, TYPES, VETS, families_make  # noqa: E402

# What a PMS looks an animal up by, and how often (shares of the search requests).
SEARCH_KINDS = {
    "owner family name": 25,
    "owner + animal": 25,
    "mobile number": 15,
    "microchip": 15,
    "PMS id / patient ID": 10,
    "animal name alone": 10,
}
DOMAINS = ["example.com", "example.org", "mail.example.net"]
# Series per study and instances per series, by modality.
SHAPES = {"DX": ((1, 3), (1, 2)), "US": ((1, 2), (4, 12)), "CT": ((2, 4), (30, 60))}


# --- filling ------------------------------------------------------------------------------------


def fill(patients_n, orders_n, rng, today):
    """Owners, animals, orders and studies as the services would have written them, by bulk
    inserts; then the search words by patients/search.py itself. Not written: the audit log
    and order status history (nothing the measured requests read)."""
    from django.conf import settings
    from django.core.management.color import no_style
    from django.db import connection, transaction
    from django.utils.timezone import get_current_timezone, make_aware

    from imaging.models import ImagingOrder, Instance, Modality, Series, Study
    from imaging.orders.services import accession_number, study_instance_uid_new
    from patients.models import (
        Breed,
        Owner,
        OwnerExternalId,
        Ownership,
        Patient,
        PatientExternalId,
        Species,
        WeightRecord,
    )
    from patients.search import search_terms_refresh
    from patients.vocabulary import rows as vocabulary_rows

    t0 = time.perf_counter()
    tz = get_current_timezone()
    now_ = datetime.now(tz)
    stations = {
        m: Modality.objects.create(
            ae_title=title, host=HOST, modality_type=m, station_name=f"{m}1", location=location
        )
        for m, title, location in TYPES
    }
    keys = {row["key"]: (row["scheme"], row["code"]) for row in vocabulary_rows("species.csv")}
    species = {key: Species.objects.get(scheme=keys[key][0], code=keys[key][1]) for key in SPECIES}
    breeds = {}
    for key, sp in species.items():
        pool = list(Breed.objects.filter(species=sp, active=True).order_by("name"))
        breeds[key] = rng.sample(pool, min(40, len(pool)))
    procedures = procedures_by_species(species, stations)

    owners_n = max(10, patients_n * 3 // 4)
    families = families_make(max(5, owners_n // 7), rng)  # ~7 owners a family name
    owners, owner_ids = [], []
    for pk in range(1, owners_n + 1):
        family = rng.choice(families)
        given = rng.choice(GIVEN)
        if rng.random() < 0.02:
            kind = rng.choice(["Kennels", "Rescue", "Stables"])
            owner = Owner(
                pk=pk,
                kind=Owner.Kind.ORGANISATION,
                organisation_name=f"{family} {kind}",
                phone=f"01632 {960000 + pk % 40000:06d}",
            )
        else:
            owner = Owner(
                pk=pk,
                family_name=family,
                given_name=given,
                mobile=f"07700 {pk:06d}",
                phone=f"01632 {pk:06d}" if rng.random() < 0.3 else "",
                email=f"{given}.{family}{pk}@{rng.choice(DOMAINS)}".lower() if rng.random() < 0.4 else "",
                city=rng.choice(["Leeds", "York", "Bath", "Ely", "Ripon"]),
                postcode=f"LS{pk % 30} {pk % 9}AB",
            )
        owners.append(owner)
        if rng.random() < 0.9:
            owner_ids.append(OwnerExternalId(owner_id=pk, system=EXTERNAL_SYSTEM, value=f"C{pk}"))
    Owner.objects.bulk_create(owners, batch_size=5000)
    OwnerExternalId.objects.bulk_create(owner_ids, batch_size=5000)

    species_keys, shares = list(SPECIES), [v[0] for v in SPECIES.values()]
    patients, ownerships, externals, weights, patient_species, primary = [], [], [], [], {}, {}
    for pk in range(1, patients_n + 1):
        key = rng.choices(species_keys, shares)[0]
        owner = owners[rng.randrange(owners_n)]
        coded = rng.random()
        deceased = rng.random() < 0.03
        patients.append(
            Patient(
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
                deceased=deceased,
                deceased_on=today - timedelta(days=rng.randint(1, 900)) if deceased else None,
            )
        )
        patient_species[pk], primary[pk] = key, owner.pk
        ownerships.append(Ownership(patient_id=pk, owner_id=owner.pk, is_primary=True))
        if rng.random() < 0.1:
            other = owners[rng.randrange(owners_n)]
            if other.pk != owner.pk:
                ownerships.append(Ownership(patient_id=pk, owner_id=other.pk, role=Ownership.Role.CO_OWNER))
        if rng.random() < 0.9:
            externals.append(PatientExternalId(patient_id=pk, system=EXTERNAL_SYSTEM, value=f"A{pk}"))
        if rng.random() < 0.6:
            typical = SPECIES[key][1]
            for n in range(rng.randint(1, 2)):
                kg = Decimal(str(round(typical * rng.uniform(0.6, 1.5), 1))).quantize(Decimal("0.001"))
                day = today - timedelta(days=rng.randint(0, 700) + 400 * n)
                weights.append(
                    WeightRecord(
                        patient_id=pk,
                        kg=kg,
                        measured_on=day,
                        recorded_at=make_aware(datetime.combine(day, datetime.min.time()), tz),
                    )
                )
    Patient.objects.bulk_create(patients, batch_size=5000)
    Ownership.objects.bulk_create(ownerships, batch_size=5000)
    PatientExternalId.objects.bulk_create(externals, batch_size=5000)
    WeightRecord.objects.bulk_create(weights, batch_size=5000)
    filled = time.perf_counter()

    # The search words and worklist name keys, written by the services' own function, chunk by
    # chunk; each owner once with its first animals' chunk, the rest at the end.
    ids = list(range(1, patients_n + 1))
    done = set()
    for chunk in range(0, len(ids), 2000):
        part = ids[chunk : chunk + 2000]
        part_owners = [Owner(pk=pk) for pk in dict.fromkeys(primary[p] for p in part) if pk not in done]
        done.update(o.pk for o in part_owners)
        with transaction.atomic():
            search_terms_refresh(patients=[Patient(pk=p) for p in part], owners=part_owners)
    rest = [Owner(pk=pk) for pk in range(1, owners_n + 1) if pk not in done]
    for chunk in range(0, len(rest), 5000):
        with transaction.atomic():
            search_terms_refresh(owners=rest[chunk : chunk + 5000])
    indexed = time.perf_counter()

    # Orders over a year around today, for a fifth of the animals; primary keys follow booking.
    imaged = rng.sample([p.pk for p in patients if not p.deceased], max(1, patients_n // 5))
    specs = []
    for _ in range(orders_n):
        patient = rng.choice(imaged)
        modality = rng.choices(["DX", "US", "CT"], [3, 2, 1])[0]
        choices = procedures.get((patient_species[patient], modality)) or procedures[("dog", modality)]
        procedure = rng.choice(choices)
        day = today + timedelta(days=rng.randint(-182, 182))
        start = make_aware(datetime.combine(day, datetime.min.time()), tz) + timedelta(
            minutes=8 * 60 + 15 * rng.randrange(40)
        )
        created = min(
            start - timedelta(days=rng.randint(0, 30), minutes=rng.randint(0, 600)),
            now_ - timedelta(minutes=rng.randint(1, 600)),
        )
        specs.append((created, rng.random(), patient, procedure, start))
    specs.sort(key=lambda spec: spec[:2])
    Status = ImagingOrder.Status
    orders, studies = [], []
    for pk, (created, _, patient, procedure, start) in enumerate(specs, start=1):
        if start.date() < today:
            roll = rng.random()
            status = Status.CANCELLED if roll < 0.08 else Status.COMPLETED if roll < 0.4 else Status.REPORTED
        else:
            status = Status.SCHEDULED
        changed = (
            created
            if status == Status.SCHEDULED
            else max(created, start + timedelta(minutes=procedure.duration_minutes))
        )
        done_ = status in (Status.COMPLETED, Status.REPORTED)
        order = ImagingOrder(
            pk=pk,
            patient_id=patient,
            procedure=procedure,
            station=stations[procedure.modality_type],
            modality_type=procedure.modality_type,
            scheduled_start=start,
            duration_minutes=procedure.duration_minutes,
            reason=rng.choice(REASONS),
            referring_vet=rng.choice(VETS),
            priority=rng.choices(["ROUTINE", "HIGH", "STAT"], [90, 8, 2])[0],
            status=status,
            status_changed=changed,
            accession_number=accession_number(pk),
            requested_procedure_id=f"RP{pk}"[:16],
            scheduled_step_id=f"SPS{pk}"[:16],
            study_instance_uid=study_instance_uid_new(),
            placer_order_number=f"PMS-{pk}" if rng.random() < 0.5 else "",
            images_received_at=(start + timedelta(minutes=10)) if done_ else None,
            created=created,
            updated=changed,
        )
        orders.append(order)
        if done_:
            studies.append(
                Study(
                    pk=len(studies) + 1,
                    study_instance_uid=order.study_instance_uid,
                    patient_id=patient,
                    order_id=pk,
                    link=Study.Link.ORDER,
                    accession_number=order.accession_number,
                    study_date=start.date(),
                    study_time=start.time(),
                    description=procedure.name[:64],
                    referring_physician=order.referring_vet,
                    dicom_patient_id=f"{settings.PATIENT_ID_PREFIX}{patient:06d}",
                    received_at=start + timedelta(minutes=10),
                    updated=start + timedelta(minutes=10),
                )
            )
    # A few studies found their animal by Patient ID alone (no order).
    for _ in range(len(studies) // 30):
        patient = rng.choice(imaged)
        day = today - timedelta(days=rng.randint(1, 300))
        at = make_aware(datetime.combine(day, datetime.min.time()), tz) + timedelta(hours=rng.randint(8, 18))
        studies.append(
            Study(
                pk=len(studies) + 1,
                study_instance_uid=study_instance_uid_new(),
                patient_id=patient,
                link=Study.Link.PATIENT_ID,
                study_date=day,
                study_time=at.time(),
                description="Thorax",
                dicom_patient_id=f"{settings.PATIENT_ID_PREFIX}{patient:06d}",
                received_at=at,
                updated=at,
            )
        )
    modality_of = {o.study_instance_uid: o.modality_type for o in orders}
    series, instances = [], []
    for study in studies:
        modality = modality_of.get(study.study_instance_uid, "DX")
        (s_low, s_high), (i_low, i_high) = SHAPES.get(modality, SHAPES["DX"])
        for s in range(1, rng.randint(s_low, s_high) + 1):
            uid = f"{study.study_instance_uid}.{s}"
            series.append(
                Series(
                    pk=len(series) + 1,
                    study_id=study.pk,
                    series_instance_uid=uid,
                    modality=modality,
                    series_number=s,
                    description=f"Series {s}",
                    station_name=f"{modality}1",
                    received_from=f"{modality}ROOM",
                    thumbnail_key=f"thumbnails/{uid}.png" if rng.random() < 0.95 else "",
                )
            )
            for i in range(1, rng.randint(i_low, i_high) + 1):
                instances.append(
                    Instance(
                        series_id=len(series),
                        sop_instance_uid=f"{uid}.{i}",
                        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.1",
                        transfer_syntax_uid="1.2.840.10008.1.2.1",
                        instance_number=i,
                        rows=2048,
                        columns=2048,
                        file_size=8_400_000,
                        storage_key=f"dicom/{uid}/{i}.dcm",
                        received_from=f"{modality}ROOM",
                        received_at=study.received_at,
                    )
                )
    with transaction.atomic():
        ImagingOrder.objects.bulk_create(orders, batch_size=5000)
        Study.objects.bulk_create(studies, batch_size=5000)
        Series.objects.bulk_create(series, batch_size=5000)
        Instance.objects.bulk_create(instances, batch_size=5000)
    with connection.cursor() as cursor:
        models = [Owner, Patient, ImagingOrder, Study, Series, Modality]
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)
        # Statistics for the planner, and the visibility map a real table has after autovacuum.
        cursor.execute("VACUUM ANALYZE")
    fill_check(rng)
    return {
        "seconds": time.perf_counter() - t0,
        "rows_s": filled - t0,
        "index_s": indexed - filled,
        "owners": owners_n,
        "families": len(families),
        "orders": len(orders),
        "studies": len(studies),
        "series": len(series),
        "instances": len(instances),
        "procedures": procedures,
        "imaged": imaged,
        "species_of": patient_species,
        "living": [p.pk for p in patients if not p.deceased],
    }


def procedures_by_species(species, stations):
    from imaging.models import Procedure

    found = {}
    for procedure in Procedure.objects.filter(active=True, modality_type__in=list(stations)).prefetch_related(
        "species"
    ):
        allowed = {s.pk for s in procedure.species.all()}
        for key, sp in species.items():
            if not allowed or sp.pk in allowed:
                found.setdefault((key, procedure.modality_type), []).append(procedure)
    return found


def fill_check(rng):
    """The bulk rows agree with what the services write (raises if not; a data check, not timing)."""
    from imaging.models import ImagingOrder
    from imaging.orders.services import accession_number
    from patients.models import Patient, SearchTerm
    from patients.search import dicom_name_key, patient_terms

    ids = list(Patient.objects.values_list("pk", flat=True))
    sample = Patient.objects.filter(pk__in=rng.sample(ids, min(300, len(ids)))).prefetch_related(
        "ownerships__owner__external_ids", "external_ids", "aliases"
    )
    for patient in sample:
        if patient.dicom_name_key != dicom_name_key(patient):
            raise RuntimeError(f"patient {patient.pk}: dicom_name_key is not patients/search.py's")
        words = set(SearchTerm.objects.filter(patient=patient).values_list("term", flat=True))
        if words != patient_terms(patient):
            raise RuntimeError(f"patient {patient.pk}: search words are not patients/search.py's")
    for order in ImagingOrder.objects.select_related("procedure", "station").order_by("?")[:300]:
        expected = (
            accession_number(order.pk),
            f"RP{order.pk}"[:16],
            f"SPS{order.pk}"[:16],
            order.procedure.modality_type,
            order.procedure.duration_minutes,
        )
        if (
            order.accession_number,
            order.requested_procedure_id,
            order.scheduled_step_id,
            order.modality_type,
            order.duration_minutes,
        ) != expected or order.station.modality_type != order.modality_type:
            raise RuntimeError(f"order {order.pk} is not what order_create would write")


# --- requests -----------------------------------------------------------------------------------


def search_requests(n, made, rng):
    """(tag, path) pairs: the words a PMS would send, by kind."""
    from patients.models import Owner, Patient, PatientExternalId

    ids = list(Patient.objects.filter(merged_into__isnull=True).values_list("pk", flat=True))
    pool = rng.sample(ids, min(len(ids), n * 2))
    animals = {p.pk: p for p in Patient.objects.filter(pk__in=pool).prefetch_related("ownerships__owner")}
    chips = [p for p in animals.values() if p.microchip]
    externals = dict(PatientExternalId.objects.filter(patient_id__in=pool).values_list("patient_id", "value"))
    owners = list(
        Owner.objects.filter(
            kind=Owner.Kind.PERSON, pk__in=[o.owner_id for p in animals.values() for o in p.ownerships.all()]
        )
    )
    kinds, weights = list(SEARCH_KINDS), list(SEARCH_KINDS.values())
    out = []
    for _ in range(n):
        kind = rng.choices(kinds, weights)[0]
        animal = animals[rng.choice(pool)]
        owner = animal.primary_owner
        if kind == "owner family name":
            words = rng.choice(owners).family_name
        elif kind == "owner + animal":
            family = owner.dicom_family_name.split()[0] if owner else rng.choice(owners).family_name
            words = f"{family} {animal.name[: rng.randint(3, len(animal.name))]}"
        elif kind == "mobile number":
            person = rng.choice(owners)
            words = person.mobile if rng.random() < 0.5 else person.mobile.replace(" ", "")
        elif kind == "microchip":
            words = rng.choice(chips).microchip
        elif kind == "PMS id / patient ID":
            words = externals.get(animal.pk) or animal.patient_id
        else:
            words = rng.choice(PETS)
        out.append((kind, "GET", f"/api/v1/patients?search={quote(words)}", None))
    return out


def study_requests(n, made, rng):
    from imaging.models import Study

    with_studies = list(Study.objects.exclude(patient=None).values_list("patient_id", flat=True).distinct())
    without = [
        p for p in rng.sample(range(1, len(made["species_of"]) + 1), 200) if p not in set(with_studies)
    ]
    out = []
    for _ in range(n):
        has = rng.random() < 0.8 or not without
        patient = rng.choice(with_studies) if has else rng.choice(without)
        out.append(
            ("with studies" if has else "without studies", "GET", f"/api/v1/studies?patient={patient}", None)
        )
    return out


def order_bodies(made, rng, tz, today):
    """An endless supply of valid order bodies (each with its own PMS order number)."""
    from django.utils.timezone import make_aware

    procedures, species_of = made["procedures"], made["species_of"]
    counter = iter(range(1, 10**9))
    lock = threading.Lock()

    def make():
        with lock:
            number = next(counter)
            patient = rng.choice(made["imaged"] if rng.random() < 0.7 else made["living"])
            modality = rng.choices(["DX", "US", "CT"], [3, 2, 1])[0]
            choices = (
                procedures.get((species_of[patient], modality)) or procedures[(species_of[patient], "DX")]
            )
            procedure = rng.choice(choices)
            day = today + timedelta(days=rng.randint(0, 30))
            start = make_aware(datetime.combine(day, datetime.min.time()), tz) + timedelta(
                minutes=8 * 60 + 15 * rng.randrange(40)
            )
            body = {
                "patient": patient,
                "procedure": procedure.code,
                "scheduled_start": start.isoformat(),
                "reason": rng.choice(REASONS),
                "referring_vet": rng.choice(VETS),
                "placer_order_number": f"BENCH-{os.getpid()}-{number}",
            }
            if rng.random() < 0.3:
                body["priority"] = "HIGH"
        return "order", "POST", "/api/v1/orders", json.dumps(body).encode()

    return make


# --- the load client ----------------------------------------------------------------------------


def load(port, key, next_request, *, concurrency, seconds, expect):
    """``concurrency`` threads, one keep-alive connection each, sending requests back to back
    for ``seconds``. Returns completed requests, wall time, latencies (ms) by tag, failures,
    and the CPU this process (the client) and the whole machine used meanwhile."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json", "Connection": "keep-alive"}
    results = [[] for _ in range(concurrency)]
    failures = [[] for _ in range(concurrency)]
    start_gate = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def connect():
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    # The connections spread evenly over gunicorn's workers, as many PMS clients (or a load
    # balancer) spread them: left to chance, all four keep-alive connections sometimes went to
    # one worker, which halved that run whatever it measured (the machine then ~55% busy).
    share = -(-concurrency // WORKERS[0])  # connections per worker, rounded up
    held, held_lock = {}, threading.Lock()

    def connect_spread():
        for _ in range(200):
            conn = connect()
            conn.request("GET", "/bench/worker", headers=headers)
            pid = json.loads(conn.getresponse().read())["pid"]
            with held_lock:
                if held.get(pid, 0) < share:
                    held[pid] = held.get(pid, 0) + 1
                    return conn
            conn.close()
        return connect()  # (never seen: a worker that takes no connection at all)

    def worker(n):
        conn = connect_spread()
        start_gate.wait()
        mine, bad = results[n], failures[n]
        while True:
            tag, method, path, body = next_request()
            t0 = time.perf_counter()
            if t0 >= stop_at[0]:
                break
            sent = headers
            if body:  # a careful PMS sends each POST with its own Idempotency-Key
                sent = {**headers, "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
            try:
                conn.request(method, path, body=body, headers=sent)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                conn.close()
                conn = connect()
                status, data = 0, str(error).encode()
            t1 = time.perf_counter()
            if status == expect:
                mine.append((tag, 1000 * (t1 - t0), t1))
            else:
                bad.append((status, data[:300]))
        conn.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu0, busy0 = os.times(), host_busy()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_gate.wait()
    for thread in threads:
        thread.join()
    ended = max([began] + [r[-1][2] for r in results if r])
    cpu1, busy1 = os.times(), host_busy()
    wall = ended - began
    latencies = [r for rs in results for r in rs]
    return {
        "n": len(latencies),
        "wall": wall,
        "rps": len(latencies) / wall if wall else 0.0,
        "times": latencies,
        "failures": [f for fs in failures for f in fs],
        "client_cpu": (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / max(wall, 1e-9),
        "host": (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]),
    }


class Endpoint:
    def __init__(self, label, next_request, expect=200, target=True):
        self.label, self.next_request, self.expect, self.target = label, next_request, expect, target
        self.runs, self.single = [], []


def cycler(items, rng):
    """Each thread-safe call gives the next request of a shuffled list, round and round."""
    items = list(items)
    rng.shuffle(items)
    position = [rng.randrange(len(items))]
    lock = threading.Lock()

    def next_request():
        with lock:
            position[0] = (position[0] + 1) % len(items)
            return items[position[0]]

    return next_request


def measure(endpoints, port, key, runs, seconds, concurrency, single_seconds, warmup=2.0):
    for run in range(runs):
        turn = endpoints[run % len(endpoints) :] + endpoints[: run % len(endpoints)]
        for endpoint in turn:
            load(
                port,
                key,
                endpoint.next_request,
                concurrency=concurrency,
                seconds=warmup,
                expect=endpoint.expect,
            )
            endpoint.runs.append(
                load(
                    port,
                    key,
                    endpoint.next_request,
                    concurrency=concurrency,
                    seconds=seconds,
                    expect=endpoint.expect,
                )
            )
        for endpoint in turn:
            if single_seconds:
                endpoint.single.append(
                    load(
                        port,
                        key,
                        endpoint.next_request,
                        concurrency=1,
                        seconds=single_seconds,
                        expect=endpoint.expect,
                    )
                )
        line = ", ".join(f"{e.label} {e.runs[-1]['rps']:.0f} req/s" for e in endpoints)
        print(f"  run {run + 1}/{runs}: {line}", flush=True)


# --- report -------------------------------------------------------------------------------------


def figures(result, tag=None):
    times = [t for tag_, t, _ in result["times"] if tag is None or tag_ == tag]
    if not times:
        return None
    return {
        "rps": result["rps"],
        "p50": statistics.median(times),
        "p95": percentile(times, 0.95),
        "n": len(times),
    }


def report(endpoints, args, made, hits):
    base = endpoints[0]
    print()
    print(
        f"REST API under gunicorn ({args.workers} gthread workers x {args.threads} threads, keep-alive,"
        f" DATABASE_CONN_MAX_AGE={args.conn_max_age}), PostgreSQL, {os.cpu_count()} CPUs shared with"
        " the client"
        f" and the database. {args.concurrency} concurrent keep-alive connections, {args.seconds:g} s"
        " per endpoint"
        f" and run; median of {len(base.runs)} runs [range]. Latency is per request at the client."
    )
    table = []
    for endpoint in endpoints:
        rows = [figures(r) for r in endpoint.runs]
        rows = [r for r in rows if r]
        ratios = [r["rps"] / b["rps"] for r, b in zip(endpoint.runs, base.runs, strict=False) if b["rps"]]
        failures = sum(len(r["failures"]) for r in endpoint.runs)
        table.append(
            [
                endpoint.label,
                span([r["rps"] for r in rows], ".0f"),
                span([r["p50"] for r in rows], ".1f"),
                span([r["p95"] for r in rows], ".1f"),
                span(ratios, ".2f"),
                failures,
            ]
        )
    print(harness.table(["endpoint", "req/s", "p50 ms", "p95 ms", "x baseline req/s", "fail"], table))
    busy = ", ".join(f"{e.label.split()[0]} {100 * med([r['host'] for r in e.runs]):.0f}%" for e in endpoints)
    client = ", ".join(
        f"{e.label.split()[0]} {100 * med([r['client_cpu'] for r in e.runs]):.0f}%" for e in endpoints
    )
    print(
        f"  machine busy (both CPUs, every process) while each ran: {busy}; the client's own CPU (% of"
        f" one): {client}"
    )
    if any(e.single for e in endpoints):
        print(
            f"  one connection at a time ({args.single_seconds:g} s each, no queueing): "
            + "; ".join(
                f"{e.label.split()[0]}"
                f" {span([figures(r)['rps'] for r in e.single if figures(r)], '.0f')} req/s,"
                f" p50 {med([figures(r)['p50'] for r in e.single if figures(r)]):.1f} ms,"
                f" p95 {med([figures(r)['p95'] for r in e.single if figures(r)]):.1f} ms"
                for e in endpoints
            )
        )
    for endpoint in endpoints:
        tags = sorted({tag for r in endpoint.runs for tag, _, _ in r["times"]})
        if len(tags) < 2:
            continue
        print(
            f"  {endpoint.label.split()[0]} by kind, p50 / p95 ms at {args.concurrency} connections"
            f"{' and at 1' if endpoint.single else ''} (rows on the first page):"
        )
        for tag in tags:
            cells = []
            for results in (endpoint.runs, endpoint.single):
                rows = [f for f in (figures(r, tag) for r in results) if f]
                if rows:
                    cells.append(
                        f"{med([r['p50'] for r in rows]):6.1f} / {med([r['p95'] for r in rows]):6.1f}"
                    )
            hit = f"   ({hits[tag]:.1f} rows)" if tag in hits else ""
            print(f"    {tag:<22} {'   '.join(cells)}{hit}")
    for endpoint in endpoints:
        fails = [f for r in endpoint.runs for f in r["failures"]]
        if fails:
            print(f"  {endpoint.label}: {len(fails)} failed, e.g. {fails[0][0]} {fails[0][1][:200]!r}")
    print("Targets (issue 6), list/search, median of the runs:")
    for endpoint in endpoints[1:]:
        ratio = med([r["rps"] / b["rps"] for r, b in zip(endpoint.runs, base.runs, strict=False) if b["rps"]])
        p95 = med([f["p95"] for f in (figures(r) for r in endpoint.runs) if f])
        label = endpoint.label if endpoint.target else f"{endpoint.label} (a write: shown, not a target)"
        print(harness.target(label, f"{ratio:.2f}x the baseline's req/s", ">= 0.5", ratio >= 0.5))
        print(harness.target(label, f"p95 {p95:.1f} ms", "< 50 ms", p95 < 50))


# --- diagnosis ----------------------------------------------------------------------------------


def diagnose(endpoints, key):
    """Where one request's time goes, in this process on the same database (no gunicorn, no
    network): SQL statements and their time, the request's phases from a profile, the
    functions with the most time of their own, and EXPLAIN ANALYZE of the search."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    import benchmarks.api_server  # noqa: F401  (the URLconf with the baseline, in this process too)

    lines = []
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        http = Client(HTTP_AUTHORIZATION=f"Bearer {key}")

        def call(request):
            _, method, path, body = request
            if method == "GET":
                return http.get(path)
            return http.post(
                path, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex
            )

        for endpoint in endpoints:
            requests = [endpoint.next_request() for _ in range(110)]
            for request in requests[:10]:
                call(request)
            count, sql_ms, wall = [], [], []
            for request in requests[10:60]:
                spent = []

                def timer(execute, sql, params, many, context, spent=spent):
                    t0 = time.perf_counter()
                    try:
                        return execute(sql, params, many, context)
                    finally:
                        spent.append(time.perf_counter() - t0)

                t0 = time.perf_counter()
                with connection.execute_wrapper(timer):
                    call(request)
                wall.append(1000 * (time.perf_counter() - t0))
                count.append(len(spent))
                sql_ms.append(1000 * sum(spent))
            profile = cProfile.Profile()
            profile.enable()
            for request in requests[60:]:
                call(request)
            profile.disable()
            stats = pstats.Stats(profile)
            n = len(requests[60:])
            total = sum(t for (_, _, name), (_, _, t, _, _) in stats.stats.items()) / n * 1000

            def cum(path_part, name, stats=stats, n=n):
                found = [
                    ct
                    for (file, _, fn), (_, _, _, ct, _) in stats.stats.items()
                    if path_part in file and fn == name
                ]
                return 1000 * max(found) / n if found else 0.0

            phases = {
                "authentication": cum("rest_framework/views.py", "perform_authentication"),
                "throttle": cum("rest_framework/views.py", "check_throttles"),
                "queries + rows (paginate_queryset)": cum(
                    "rest_framework/pagination.py", "paginate_queryset"
                ),
                "validation (is_valid)": cum("rest_framework/serializers.py", "is_valid"),
                "order_create": cum("imaging/orders/services.py", "order_create"),
                "serializing (to_representation)": cum("rest_framework/serializers.py", "to_representation"),
                "list bodies (rows.py)": max(
                    cum("integrations/api/rows.py", "patients_json"),
                    cum("integrations/api/rows.py", "studies_json"),
                ),
                "JSON rendering": cum("rest_framework/renderers.py", "render"),
            }
            shown = ", ".join(f"{name} {ms:.2f}" for name, ms in phases.items() if ms >= 0.01)
            lines.append(
                f"  {endpoint.label}: {statistics.median(wall):.1f} ms a request (median of 50),"
                f" {statistics.median(count):.0f} SQL statements, {statistics.median(sql_ms):.1f} ms in"
                " them (sent, run, read)."
                f" Profiled ({n} requests, {total:.1f} ms each under the profiler), ms per request: {shown}"
            )
            top = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:6]
            lines.append(
                "    most own time: "
                + "; ".join(
                    f"{Path(file).name}:{line}({name}) {1000 * tt / n:.2f} ms x{nc / n:.0f}"
                    for (file, line, name), (_, nc, tt, _, _) in top
                )
            )
    lines += throttle_cost(endpoints, key)
    lines += explain_search(endpoints[1])
    return "\n".join(lines)


def throttle_cost(endpoints, key):
    """What the per-client throttle cost each request in the server, at the rate each endpoint
    ran: DRF's SimpleRateThrottle keeps every request of the last minute in a list it reads
    from and writes to the cache (LocMemCache, one per worker process: pickled) each time."""
    from django.core.cache import cache
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from integrations.api.auth import ApiKeyAuthentication, ClientRateThrottle

    request = Request(
        APIRequestFactory().get("/bench/ping", HTTP_AUTHORIZATION=f"Bearer {key}"),
        authenticators=[ApiKeyAuthentication()],
    )
    request.user  # noqa: B018  (authenticates)
    parts = []
    for endpoint in endpoints:
        per_worker_minute = int(med([r["rps"] for r in endpoint.runs]) * 60 / WORKERS[0])
        throttle = ClientRateThrottle()
        now_ = time.time()
        history = [now_ - 59 * i / max(1, per_worker_minute) for i in range(per_worker_minute)]
        cache.set(throttle.get_cache_key(request, None), history, 60)
        times = []
        for _ in range(50):
            t0 = time.perf_counter()
            throttle.allow_request(request, None)
            times.append(1000 * (time.perf_counter() - t0))
        parts.append(
            f"{endpoint.label.split()[0]} ~{per_worker_minute:,} entries {statistics.median(times):.2f} ms"
        )
        cache.delete(throttle.get_cache_key(request, None))
    return [
        "  the throttle's own cost per request at each endpoint's rate (its list holds a minute's"
        " requests per"
        " worker): " + "; ".join(parts)
    ]


def explain_search(endpoint):
    """EXPLAIN ANALYZE of the list query behind a search of each kind (the page of rows), the
    whole plan of the slowest."""
    from urllib.parse import parse_qs

    from django.db import connection
    from rest_framework.test import APIRequestFactory

    from integrations.api.patients import PatientList

    plans = {}
    for _ in range(400):
        tag, _, path, _ = endpoint.next_request()
        if tag in plans:
            continue
        words = parse_qs(urlsplit(path).query)["search"][0]
        view = PatientList()
        view.request = view.initialize_request(APIRequestFactory().get("/api/v1/patients", {"search": words}))
        view.format_kwarg = None
        page = view.get_queryset().order_by("id")  # integrations/api/pagination.py's PageQuery
        queryset = page.pages.queryset(
            {**page.filters, "position": None}, shape=(page.ordering, None, 0, 101)
        )  # what the paginator asks
        sql, params = queryset.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            plan = [row[0] for row in cursor.fetchall()]
        ms = float(next(line for line in plan if line.startswith("Execution Time")).split()[2])
        plans[tag] = (ms, words, plan)
    lines = [
        "  EXPLAIN ANALYZE of the search's page query: "
        + "; ".join(f"{tag} ({words!r}) {ms:.2f} ms" for tag, (ms, words, _) in plans.items())
    ]
    tag, (ms, words, plan) = max(plans.items(), key=lambda item: item[1][0])
    lines.append(f"  the slowest, {tag} ({words!r}):")
    lines += ["    " + line for line in plan]
    return lines


# --- main ---------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument(
        "--orders", type=int, default=30_000, help="imaging orders over a year (default 30000)"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="times each endpoint is measured, in turn (default 3)"
    )
    parser.add_argument("--seconds", type=float, default=10, help="seconds per endpoint and run (default 10)")
    parser.add_argument(
        "--single-seconds",
        type=float,
        default=4,
        help="seconds per endpoint and run with one connection (default 4; 0: skip)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="concurrent keep-alive connections (default 4)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument(
        "--threads", type=int, default=4, help="threads per gunicorn worker (gthread; default 4)"
    )
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=60,
        help="DATABASE_CONN_MAX_AGE for gunicorn (default 60: persistent connections; 0: one per request)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-diagnose", action="store_true", help="skip the in-process SQL counts, EXPLAIN and profile"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database and the work directory (debugging)"
    )
    parser.add_argument(
        "--reuse",
        metavar="DATABASE",
        help="measure a database an earlier --keep run left (not filled again, not dropped)",
    )
    args = parser.parse_args()
    WORKERS[0] = args.workers

    began = time.perf_counter()
    url = harness.postgres_url()
    workdir = Path(tempfile.mkdtemp(prefix="vetpacs-bench-api-"))
    db = None
    endpoints = []
    made, hits, diagnosis = None, {}, ""
    try:
        db = harness.Database(url, "api", reuse=args.reuse)
        secret = uuid.uuid4().hex * 2
        common = {
            "DEBUG": "false",
            "SECRET_KEY": secret,
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": db.url,
            "VAR_DIR": str(workdir / "var"),
            "STORAGE_ROOT": str(workdir / "storage"),
            "ALLOWED_HOSTS": HOST,
            "DJANGO_SETTINGS_MODULE": "vetclinic.settings",
            # Plain HTTP on 127.0.0.1, as behind the clinic's TLS proxy: not redirected to https.
            "SECURE_SSL_REDIRECT": "false",
        }
        os.environ.update(common)
        import django

        django.setup()
        from django.core.management import call_command
        from django.utils.timezone import get_current_timezone

        from integrations.api.clients import api_client_create
        from integrations.models import ApiClient
        from vetclinic.audit.services import Actor

        tz = get_current_timezone()
        today = datetime.now(tz).date()
        rng = random.Random(args.seed)
        print(
            f"database {db.name} on {urlsplit(url).hostname}; work dir {workdir}; {os.cpu_count()} CPUs,"
            f" load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        call_command("migrate", verbosity=0, interactive=False)
        if not args.reuse:
            made = fill(args.patients, args.orders, rng, today)
            print(
                f"{args.patients:,} animals, {made['owners']:,} owners ({made['families']:,} family names),"
                f" {made['orders']:,} orders, {made['studies']:,} studies ({made['series']:,} series,"
                f" {made['instances']:,} instances): rows in {made['rows_s']:.0f} s, search words in"
                f" {made['index_s']:.0f} s, all checked and analysed in {made['seconds']:.0f} s",
                flush=True,
            )
        else:
            made = reused(rng)
            print(f"reusing {db.name}: {len(made['species_of']):,} animals", flush=True)
        ApiClient.objects.filter(name=CLIENT_NAME).delete()
        _, key = api_client_create(
            actor=Actor.system("benchmark"), name=CLIENT_NAME, scopes=["*"], rate_limit=1_000_000
        )

        req_rng = random.Random(args.seed + 1)
        searches = search_requests(2000, made, req_rng)
        studies = study_requests(2000, made, req_rng)
        hits = search_hits(searches, studies, key)
        endpoints = [
            Endpoint("baseline GET /bench/ping", cycler([("ping", "GET", "/bench/ping", None)], req_rng)),
            Endpoint("search GET /api/v1/patients?search=", cycler(searches, req_rng)),
            Endpoint("studies GET /api/v1/studies?patient=", cycler(studies, req_rng)),
            Endpoint(
                "orders POST /api/v1/orders", order_bodies(made, req_rng, tz, today), expect=201, target=False
            ),
        ]
        env = {**os.environ, **common, "DATABASE_CONN_MAX_AGE": str(args.conn_max_age)}
        from django.db import connections

        connections.close_all()
        app = "benchmarks.api_server:application"
        with harness.Gunicorn(app, workdir, env, args.workers, args.threads) as server:
            print(
                f"gunicorn on port {server.port}: {args.workers} workers x {args.threads} threads;"
                f" {args.runs} runs of {args.seconds:g} s per endpoint at {args.concurrency} connections"
                f" (+ {args.single_seconds:g} s at 1)",
                flush=True,
            )
            measure(
                endpoints, server.port, key, args.runs, args.seconds, args.concurrency, args.single_seconds
            )
            errors = [
                line
                for line in tail(server.log, 20000).splitlines()
                if "Traceback" in line or "ERROR" in line
            ]
            if errors:
                print(f"gunicorn logged {len(errors)} error lines; see {server.log} (--keep keeps it)")
        if not args.no_diagnose:
            diagnosis = diagnose(endpoints, key)
    finally:
        try:
            if endpoints and endpoints[0].runs:
                report(endpoints, args, made, hits)
                if diagnosis:
                    print(
                        "\nWhere one request's time goes (this process, same database, Django's test client):"
                    )
                    print(diagnosis)
        except Exception:
            traceback.print_exc()
        harness.cleanup([db], workdir, keep=args.keep)
        print(f"total {time.perf_counter() - began:.0f} s")


def reused(rng):
    """What the requests need from a database an earlier run filled."""
    from imaging.models import ImagingOrder, Modality
    from patients.models import Patient, Species
    from patients.vocabulary import rows as vocabulary_rows

    keys = {row["key"]: (row["scheme"], row["code"]) for row in vocabulary_rows("species.csv")}
    species = {key: Species.objects.get(scheme=keys[key][0], code=keys[key][1]) for key in SPECIES}
    by_pk = {sp.pk: key for key, sp in species.items()}
    stations = {m.modality_type: m for m in Modality.objects.all()}
    species_of = {pk: by_pk[sp] for pk, sp in Patient.objects.values_list("pk", "species_id")}
    imaged = list(ImagingOrder.objects.values_list("patient_id", flat=True).distinct())
    living = list(
        Patient.objects.filter(deceased=False, merged_into__isnull=True).values_list("pk", flat=True)
    )
    return {
        "procedures": procedures_by_species(species, stations),
        "imaged": imaged,
        "species_of": species_of,
        "living": living,
    }


def search_hits(searches, studies, key):
    """Rows a request of each kind finds (on the first page), asked in this process; a check
    that the requests are valid, too."""
    from django.test import Client
    from django.test.utils import override_settings

    counts = {}
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        http = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
        for tag, _, path, _ in searches[:300] + studies[:100]:
            response = http.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")
            counts.setdefault(tag, []).append(len(response.json()["results"]))
    return {tag: statistics.mean(values) for tag, values in counts.items()}


if __name__ == "__main__":
    main()
