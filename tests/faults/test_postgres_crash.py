"""A PostgreSQL crash right after the worker indexed a burst: every object whose indexing task
succeeded (and was acknowledged, late acks) is in the index when PostgreSQL is back."""

from tests.conftest import wait_for
from tests.faults.conftest import worker_succeeded
from tests.studies import stored_object

BATCHES, SIZE = 8, 50


def test_objects_indexed_before_a_postgresql_crash_are_all_there_after_it(
    private_postgres, celery_worker_start, celery_test_queue, storage_root
):
    from vetclinic.celery import app

    worker = celery_worker_start()
    keys = []
    for batch in range(BATCHES):
        study = f"1.2.826.0.1.3680043.10.1.{batch}"
        stored = [stored_object(study_uid=study, series_uid=f"{study}.1", name="Hartley^Biscuit",
                                patient_id="", species="Canis lupus familiaris")
                  for _ in range(SIZE)]  # fmt: skip
        keys += [key for _, key, _ in stored]
        app.send_task("imaging.tasks.instances_ingest", args=[[{"storage_key": key} for _, key, _ in stored]])
    wait_for(lambda: worker_succeeded(worker) == BATCHES, timeout=120, message="every batch indexed")

    private_postgres.crash()  # at once: the last commits were a moment ago
    private_postgres.start()

    sql = "SELECT count(*) FROM imaging_instance WHERE storage_key = ANY(%s)"
    [(indexed,)] = private_postgres.query(sql, keys)
    assert indexed == BATCHES * SIZE
