"""Patient search at clinic scale: our prefix index against the obvious ``icontains`` query.

    .venv/bin/python benchmarks/search.py [--patients 100000] [--queries 200]

Builds a throw-away database (PostgreSQL next to DATABASE_URL's when it names one, else a
temporary SQLite file; benchmarks/harness.py) through the real migrations and the services'
indexing code, fills it with owners and animals,
then times the same typed queries both ways and prints p50/p95 and the ratio. The baseline is
what a first version would write: ``icontains`` over animal, owner, phone and microchip
columns joined through the owners, with DISTINCT.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import harness  # noqa: E402
from benchmarks.harness import FAMILY, GIVEN, PETS  # noqa: E402


def fill(patients, species, rng):
    from django.db import connection, transaction

    from patients.models import Owner, Ownership, Patient
    from patients.search import search_terms_refresh

    owners_n = patients * 2 // 3
    start = time.perf_counter()
    Owner.objects.bulk_create(
        [
            Owner(
                family_name=f"{rng.choice(FAMILY)}{'' if i % 3 else rng.randint(1, 999)}",
                given_name=rng.choice(GIVEN),
                mobile=f"07700 {900000 + i:06d}",
            )
            for i in range(owners_n)
        ],
        batch_size=5000,
    )
    owner_ids = list(Owner.objects.values_list("pk", flat=True))
    Patient.objects.bulk_create(
        [
            Patient(
                patient_id=f"P{i:07d}",
                name=f"{rng.choice(PETS)}{'' if i % 4 else i}",
                species=rng.choice(species),
                microchip=f"985141{i:09d}",
            )
            for i in range(patients)
        ],
        batch_size=5000,
    )
    patient_ids = list(Patient.objects.values_list("pk", flat=True))
    Ownership.objects.bulk_create(
        [
            Ownership(patient_id=pk, owner_id=owner_ids[n % len(owner_ids)], is_primary=True)
            for n, pk in enumerate(patient_ids)
        ],
        batch_size=5000,
    )
    for chunk in range(0, len(patient_ids), 2000):
        with transaction.atomic():
            search_terms_refresh(patients=Patient.objects.filter(pk__in=patient_ids[chunk : chunk + 2000]))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return time.perf_counter() - start


def baseline_search(query):
    from django.db.models import Q

    from patients.models import Patient

    condition = Q()
    for word in query.split():
        condition &= (
            Q(name__icontains=word)
            | Q(owners__family_name__icontains=word)
            | Q(owners__given_name__icontains=word)
            | Q(owners__mobile__icontains=word)
            | Q(microchip__icontains=word)
            | Q(patient_id__icontains=word)
        )
    return list(Patient.objects.filter(condition).distinct().order_by("name", "pk")[:25])


def our_search(query):
    from patients.selectors import patient_search

    return list(patient_search(query=query))


def timed(function, queries):
    times = []
    for query in queries:
        start = time.perf_counter()
        function(query)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), harness.percentile(times, 0.95)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = random.Random(7)

    workdir = Path(tempfile.mkdtemp(prefix="vetpacs-bench-search-"))
    db = None
    try:
        db = harness.Database(os.environ.get("DATABASE_URL", ""), "search", workdir=workdir)
        os.environ["DATABASE_URL"] = db.url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetclinic.settings")
        import django

        django.setup()
        from django.db import connection

        from patients.models import Species

        db.migrate_here()

        species = list(Species.objects.all())
        seconds = fill(args.patients, species, rng)
        print(
            f"database: {connection.vendor}; {args.patients:,} patients filled and indexed in {seconds:.1f} s"
        )
        kinds = {
            "animal name prefix": lambda: rng.choice(PETS)[:4].lower(),
            "owner + animal": lambda: f"{rng.choice(FAMILY)[:5]} {rng.choice(PETS)[:3]}",
            "mobile digits": lambda: f"07700{900000 + rng.randrange(args.patients // 2):06d}"[:9],
            "microchip": lambda: f"985141{rng.randrange(args.patients):09d}",
        }
        rows = []
        for kind, make in kinds.items():
            queries = [make() for _ in range(args.queries)]
            # Hits per query, to show both found something (the baseline misses phone numbers
            # typed without the stored spaces; that is a difference in kind, not in speed).
            hits = (
                statistics.mean(len(our_search(q)) for q in queries[:20]),
                statistics.mean(len(baseline_search(q)) for q in queries[:20]),
            )
            ours = timed(our_search, queries)
            base = timed(baseline_search, queries)
            rows.append(
                [
                    kind,
                    f"{ours[0]:.2f}ms",
                    f"{ours[1]:.2f}ms",
                    f"{base[0]:.2f}ms",
                    f"{base[1]:.2f}ms",
                    f"{base[0] / ours[0]:.1f}x",
                    f"{hits[0]:.1f} / {hits[1]:.1f}",
                ]
            )
        header = ["query kind", "ours p50", "p95", "baseline p50", "p95", "ratio p50", "hits ours / baseline"]
        print(harness.table(header, rows, indent=""))
    finally:
        harness.cleanup([db], workdir)


if __name__ == "__main__":
    main()
