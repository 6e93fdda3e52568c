"""The archive's study searches alone (issue 15), code trees side by side: C-FIND and QIDO-RS.

    .venv/bin/python benchmarks/archive_searches.py --database NAME \
        --tree before=/path/to/a/checkout --tree after=. [--orthanc DICOM_PORT:HTTP_PORT] \
        [--rounds 5] [--queries 100]

For each ``--tree`` (a checkout with its .venv) a DICOM listener and gunicorn (as archive.py runs
them: ``--processes 1``; 2 gthread workers x 4 threads, kept database connections) serve the one
PostgreSQL database ``--database``, which holds archive.py's archive: a ``--keep`` run's database
copied (``createdb -T``), or one filled with its plan without files (``--fill``: the corpus's
animals and owners as archive.py registers them, every study, series and instance row, the
registered animals' studies linked, the referrals' not; no storage, so only searches work).
Optionally a running Orthanc of such a run (``--orthanc``, the ports archive.py printed) is
measured too. Then, taking turns round by round, each server gets archive.py's 100 searches
(patient name wildcard, a date range of 1-4 months, a modality) as C-FIND over one pynetdicom
association and as QIDO-RS over one keep-alive connection; the script prints each round's p50,
the median of the rounds, the ratio of each tree to the first (and to Orthanc), and whether all
servers found the same studies. Nothing is asserted.

The database gets the benchmark's nodes and an API client (archive.py ``vetpacs_nodes``) and the
query audit entries; migrations of the first tree are applied. Use a copy, not a kept run's own
database.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness  # noqa: E402
from benchmarks.archive import (  # noqa: E402
    HOST,
    OUR_AE,
    Server,
    cfind,
    free_port,
    qido,
    queries_make,
    vetpacs_fill,
    vetpacs_nodes,
)
from benchmarks.archive_corpus import plan_make  # noqa: E402


def fill(plan):
    """The plan's rows without files (see the module's docstring)."""
    from datetime import date
    from datetime import time as tm

    from django.core.management.color import no_style
    from django.db import connection, transaction

    from imaging.models import Instance, Series, Study

    def day(text):
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))

    vetpacs_fill(plan)
    studies, series, instances = [], [], []
    for study_pk, study in enumerate(plan["studies"], start=1):
        animal = study["animal"]
        clock = study["time"]
        studies.append(Study(
            pk=study_pk, study_instance_uid=study["uid"], link=Study.Link.PATIENT_ID if animal["registered"]
            else Study.Link.UNMATCHED, patient_id=animal["pk"] if animal["registered"] else None,
            study_date=day(study["date"]), study_time=tm(int(clock[:2]), int(clock[2:4]), int(clock[4:])),
            accession_number=study["accession"], study_id=study["accession"][-8:],
            description=study["description"], referring_physician=study["referring"],
            dicom_patient_id=animal["patient_id"], dicom_patient_name=f"{animal['family']}^{animal['name']}",
            dicom_species=animal["species_meaning"], dicom_birth_date=day(animal["birth"]),
            dicom_patient_sex=animal["sex"], dicom_responsible_person=f"{animal['family']}^{animal['given']}",
            dicom_responsible_person_role="OWNER",
        ))  # fmt: skip
        for one in study["series"]:
            series.append(Series(
                pk=len(series) + 1, study_id=study_pk, series_instance_uid=one["uid"], modality=study["modality"],
                series_number=one["number"], body_part=study["body_part"],
            ))  # fmt: skip
            for number in range(1, one["count"] + 1):
                instances.append(Instance(
                    pk=len(instances) + 1, series_id=len(series), sop_instance_uid=f"{one['uid']}.{number}",
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.7", transfer_syntax_uid="1.2.840.10008.1.2.1",
                    instance_number=number, rows=64, columns=64, file_size=1, storage_key=f"none/{len(instances) + 1}",
                ))  # fmt: skip
    with transaction.atomic():
        Study.objects.bulk_create(studies, batch_size=2000)
        Series.objects.bulk_create(series, batch_size=2000)
        Instance.objects.bulk_create(instances, batch_size=5000)
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), [Study, Series, Instance]):
                cursor.execute(sql)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="a PostgreSQL database on 127.0.0.1:5432")
    parser.add_argument("--tree", action="append", required=True, metavar="LABEL=DIR")
    parser.add_argument("--orthanc", metavar="DICOM_PORT:HTTP_PORT")
    parser.add_argument("--fill", action="store_true", help="fill the (empty) database with the plan's rows")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--studies", type=int, default=10000, help="archive.py's --studies (the plan)")
    args = parser.parse_args()
    trees = dict(tree.split("=", 1) for tree in args.tree)
    work = Path(tempfile.mkdtemp(prefix="vetpacs-bench-searches-"))
    env = {
        **os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.database}", "DEBUG": "false",
        "SECRET_KEY": uuid.uuid4().hex * 2, "LOG_LEVEL": "INFO", "VAR_DIR": str(work / "var"),
        "STORAGE_ROOT": str(work / "storage"), "STORAGE_BACKEND": "file", "ALLOWED_HOSTS": HOST,
        "SECURE_SSL_REDIRECT": "false", "DJANGO_SETTINGS_MODULE": "vetclinic.settings",
        "CELERY_QUEUE": f"bench-{uuid.uuid4().hex[:10]}", "DICOM_AE_TITLE": OUR_AE, "DICOM_ALLOW_ANY_AE": "false",
        "PATIENT_ID_PREFIX": "P", "DATABASE_CONN_MAX_AGE": "60", "TCP_NODELAY": "1",
    }  # fmt: skip
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0, interactive=False)
    plan = plan_make(args.studies, 10 * args.studies, 500, 7)
    if args.fill:
        fill(plan)
    key = vetpacs_nodes(free_port())
    connections.close_all()
    servers = {}
    if args.orthanc:
        dicom_port, http_port = (int(port) for port in args.orthanc.split(":"))
        servers["Orthanc"] = Server("Orthanc", dicom_port, "ORTHANC", http_port, "/dicom-web", {})
    try:
        for label, tree in trees.items():
            root = str(Path(tree).resolve())
            python = f"{root}/.venv/bin/python"
            port, log = free_port(), work / f"listener-{label}.log"
            harness.STARTED.append(harness.launch(
                [python, "manage.py", "dicom_listener", "--bind", HOST, "--port", str(port), "--ae-title", OUR_AE,
                 "--processes", "1"],
                env=env, log=log, what=f"{label}'s listener", cwd=root,
                ready=lambda log=log: f"DICOM listener {OUR_AE} on" in log.read_text(),
            ))  # fmt: skip
            web_port = free_port()
            harness.STARTED.append(harness.launch(
                [python, "-m", "gunicorn", "vetclinic.wsgi:application", "--bind", f"{HOST}:{web_port}",
                 "--workers", "2", "--worker-class", "gthread", "--threads", "4", "--keep-alive", "75",
                 "--log-level", "warning", "--chdir", root],
                env=env, log=work / f"gunicorn-{label}.log", what=f"{label}'s gunicorn", cwd=root,
                ready=lambda web_port=web_port: harness.http_ok(web_port, "/api/v1/health"),
            ))  # fmt: skip
            servers[label] = Server(
                label, port, OUR_AE, web_port, "/dicomweb", {"Authorization": f"Bearer {key}"}
            )
        queries = queries_make(plan, args.queries, random.Random(8))  # archive.py's (seed 7 + 1)
        for server in servers.values():  # warm-up, untimed
            cfind(server, queries[:10])
            qido(server, queries[:10])
        p50s, found = {}, {}
        for n in range(args.rounds):
            line = []
            for name, run in (("cfind", cfind), ("qido", qido)):
                for label, server in servers.items():
                    result = run(server, queries)
                    p50s.setdefault((name, label), []).append(statistics.median(result["times"]))
                    found[(name, label)] = result["found"]
                    line.append(f"{name} {label} {p50s[(name, label)][-1]:.1f}")
            print(f"round {n}: {', '.join(line)} ms; load average {os.getloadavg()[0]:.1f}", flush=True)
        first = next(iter(trees))
        for name, what in (("cfind", "C-FIND"), ("qido", "QIDO-RS")):
            for label in servers:
                rounds = p50s[(name, label)]
                median = statistics.median(rounds)
                ratios = [f"{median / statistics.median(p50s[(name, other)]):.2f}x {other}'s"
                          for other in (first, "Orthanc") if other != label and (name, other) in p50s]  # fmt: skip
                print(f"{what} {label}: p50 by round {' '.join(f'{x:.1f}' for x in rounds)} ms; median"
                      f" {median:.1f} ms{'; ' if ratios else ''}{', '.join(ratios)}")  # fmt: skip
            answers = [found[(name, label)] for label in servers]
            own = sum(query[3] in studies for query, studies in zip(queries, answers[0], strict=True))
            print(f"{what}: the same studies from every server: {all(a == answers[0] for a in answers)};"
                  f" each search's own study found in {own}/{len(queries)}; studies a search"
                  f" {statistics.mean(len(s) for s in answers[0]):.1f}")  # fmt: skip
    finally:
        harness.stop_all()
        time.sleep(0.5)


if __name__ == "__main__":
    main()
