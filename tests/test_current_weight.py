"""The animal's current weight, one rule (patients/models/patients.py WeightRecord.NEWEST_FIRST) read by
the record, the REST rows and the worklist alike."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from pydicom.dataset import Dataset

from imaging.dicom.records.datasets import order_row, worklist_elements
from imaging.orders.worklist import worklist_rows
from integrations.api.rows import patient_rows
from patients.models import Patient
from patients.services import weight_record

DAY = datetime(2026, 11, 23, 10, tzinfo=UTC)
TODAY = DAY.date()


def weigh(actor, patient, kg, days_ago):
    weight_record(actor=actor, patient=patient, kg=kg, measured_on=TODAY - timedelta(days=days_ago))


@pytest.fixture
def weighed(make_patient, make_order, actor):
    """Animals with awkward weight histories, each with an order without a weight of its own
    (its worklist item shows the animal's current weight), and the weight each must show."""
    animals = {}
    animals["Unweighed"] = (make_patient("Unweighed"), None)
    same_day = make_patient("Twice")
    weigh(actor, same_day, "30.0", 0)
    weigh(actor, same_day, "29.5", 0)  # recorded later the same day: the current one
    animals["Twice"] = (same_day, Decimal("29.500"))
    late_entry = make_patient("Backdated")
    weigh(actor, late_entry, "12.0", 3)
    weigh(actor, late_entry, "11.0", 9)  # entered last, measured earlier: not current
    animals["Backdated"] = (late_entry, Decimal("12.000"))
    on_the_day = make_patient("Ordered")
    weigh(actor, on_the_day, "31.0", 10)
    make_order(on_the_day, "DX-HIPS", DAY + timedelta(days=1), weight_kg="28.5")  # weighed for the order
    weigh(actor, on_the_day, "30.2", 1)  # recorded after, measured before the order's day
    animals["Ordered"] = (on_the_day, Decimal("28.500"))
    for patient, _ in animals.values():
        make_order(patient, "DX-THX2", DAY)
    return animals


def test_the_record_the_rest_rows_and_the_worklist_show_the_same_current_weight(weighed):
    prefetched = {p.pk: p for p in Patient.objects.prefetch_related("weights")}
    rest = {row["id"]: row["current_weight_kg"] for row in patient_rows(Patient.objects.all())}
    for name, (patient, expected) in weighed.items():
        query = Dataset()
        query.PatientID = patient.patient_id
        [row] = [r for r in worklist_rows(identifier=query) if r["weight_kg"] is None]
        order = patient.orders.get(weight_kg=None)
        shown = {
            "record": Patient.objects.get(pk=patient.pk).current_weight,
            "record, prefetched": prefetched[patient.pk].current_weight,
            "REST row": rest[patient.pk],
            "worklist row": row["last_weight"],
            "worklist row made from the order": order_row(order)["last_weight"],
        }
        assert shown == dict.fromkeys(shown, expected), name
        dicom = worklist_elements(row).dataset()
        assert dicom.PatientWeight == (None if expected is None else format(expected.normalize(), "f")), name
