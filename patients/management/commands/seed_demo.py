"""A demo clinic to click through at once: staff of every role, owners, animals and visits.

Runs through the same services as the UI, keyed on demo external ids, so running it again
changes nothing.
"""

from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils.timezone import make_aware

from patients.models import Breed, Owner, Species
from patients.services import owner_upsert, patient_upsert, visit_create
from vetclinic import clock
from vetclinic.audit.services import Actor

STAFF = [
    # username, password, first, last, group, is_staff
    ("frontdesk", "frontdesk-demo", "Fran", "Desk", "front desk", False),
    ("vet", "vet-demo", "Vera", "Vetson", "veterinarian", False),
    ("radiologist", "radiologist-demo", "Ray", "Dio", "radiologist", False),
    ("admin", "admin-demo", "Ada", "Admin", "admin", True),
]

OWNERS = [
    (
        "O1",
        {
            "family_name": "Hartley",
            "given_name": "Jane",
            "title": "Ms",
            "phone": "01632 960123",
            "mobile": "07700 900123",
            "email": "jane.hartley@example.org",
            "address_line1": "12 Mill Lane",
            "city": "Ashford",
            "postcode": "TN24 8AA",
            "country": "United Kingdom",
        },
    ),
    (
        "O2",
        {
            "family_name": "Okafor",
            "given_name": "Chidi",
            "phone": "01632 960456",
            "email": "chidi@example.org",
            "city": "Ashford",
        },
    ),
    (
        "O3",
        {
            "kind": Owner.Kind.ORGANISATION,
            "organisation_name": "Greenfield Farm",
            "phone": "01632 960789",
            "address_line1": "Greenfield Road",
            "city": "Wye",
        },
    ),
    ("O4", {"family_name": "Nguyen", "given_name": "Linh", "mobile": "07700 900456"}),
    (
        "O5",
        {
            "family_name": "García",
            "given_name": "Lucía",
            "mobile": "07700 900789",
            "email": "lucia.garcia@example.org",
        },
    ),
]

ANIMALS = [
    # external id, owner, name, species code, breed meaning, sex, neutered, born, kg, microchip
    (
        "A1",
        "O1",
        "Biscuit",
        "448771007",
        "Labrador retriever dog breed",
        "M",
        "ALTERED",
        date(2019, 4, 2),
        "31.4",
        "985141000123456",
    ),
    (
        "A2",
        "O1",
        "Pepper",
        "448169003",
        "Domestic shorthaired cat",
        "F",
        "ALTERED",
        date(2021, 8, 15),
        "4.2",
        "985141000654321",
    ),
    (
        "A3",
        "O2",
        "Comet",
        "35354009",
        "American Quarter Horse horse breed",
        "M",
        "ALTERED",
        date(2014, 5, 1),
        "520",
        "",
    ),
    (
        "A4",
        "O3",
        "Daisy",
        "34618005",
        "Holstein-Friesian cow breed",
        "F",
        "UNALTERED",
        date(2020, 3, 3),
        "640",
        "",
    ),
    ("A5", "O4", "Clover", "36571002", "", "F", "", date(2023, 1, 10), "1.8", ""),
    (
        "A6",
        "O5",
        "Rocco",
        "448771007",
        "Mixed breed dog",
        "M",
        "UNALTERED",
        date(2022, 11, 20),
        "18.9",
        "900263000112233",
    ),
    ("A7", "O5", "Spike", "S0010", "", "M", "", None, "0.45", ""),
]

MODALITIES = [
    # AE title, host, modality, station, location. The host is where the listener takes the AE
    # title from: this machine, for trying the demo with dcmtk; a real one's IP address in a clinic.
    ("DRROOM", "127.0.0.1", "DX", "DR1", "X-ray room"),
    ("USROOM", "127.0.0.1", "US", "US1", "Ultrasound room"),
    ("CTROOM", "127.0.0.1", "CT", "CT1", "CT suite"),
]

ORDERS = [
    # demo number, animal, procedure, day offset, hh:mm, reason, arrived
    ("1", "A1", "DX-LIMB", 0, "09:30", "Lameness left fore since Saturday", True),
    ("2", "A2", "US-ABD", 0, "10:30", "Vomiting for three days", False),
    ("3", "A6", "DX-THX2", 0, "11:00", "Cough, rule out pneumonia", False),
    ("4", "A3", "DX-FOOT", 0, "14:15", "Pre-purchase examination", False),
    ("5", "A4", "US-PREG", 1, "08:15", "Pregnancy scan, day 35", False),
    ("6", "A6", "DX-HIPS", 1, "09:00", "Hip dysplasia screening", False),
    ("7", "A5", "DX-WHOL", 2, "10:00", "Dental disease, check jaw", False),
    ("8", "A2", "CT-THX", 3, "13:00", "Staging before surgery", False),
]

VISITS = [
    # animal, day offset, hour, reason, status
    ("A1", 0, 9, "Lameness left fore, radiographs", "arrived"),
    ("A2", 0, 10, "Vomiting, abdominal ultrasound", "booked"),
    ("A3", 0, 14, "Pre-purchase examination", "booked"),
    ("A6", -3, 11, "Vaccination", "finished"),
    ("A4", 1, 8, "Pregnancy scan", "booked"),
]


class Command(BaseCommand):
    help = "Create a demo clinic: a user per staff group, owners, animals of several species, visits."

    def add_arguments(self, parser):
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if any user exists.")

    @transaction.atomic
    def handle(self, *args, if_empty=False, **options):
        if if_empty and User.objects.exists():
            self.stdout.write("Users exist already; demo data not added.")
            return
        actor = Actor.system("seed_demo")
        vet = None
        for username, password, first, last, group, is_staff in STAFF:
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last, "is_staff": is_staff}
            )
            if created:
                user.set_password(password)
                user.save()
            user.groups.add(Group.objects.get(name=group))
            vet = user if group == "veterinarian" else vet

        owners = {
            key: owner_upsert(actor=actor, fields=fields, external=("demo", key)) for key, fields in OWNERS
        }
        patients = {}
        for key, owner, name, species_code, breed, sex, neutered, born, kg, chip in ANIMALS:
            species = Species.objects.get(code=species_code)
            patients[key] = patient_upsert(
                actor=actor,
                external=("demo", key),
                owner=owners[owner],
                fields={
                    "name": name, "species": species,
                    "breed": Breed.objects.get(meaning=breed) if breed else None,
                    "sex": sex, "neutered": neutered, "birth_date": born, "microchip": chip,
                },
                weight_kg=Decimal(kg),
            )  # fmt: skip
        today = clock.today()
        for key, offset, hour, reason, status in VISITS:
            visit_create(
                actor=actor,
                patient=patients[key],
                starts_at=make_aware(datetime.combine(today + timedelta(days=offset), time(hour))),
                reason=reason,
                vet=vet,
                status=status,
                external=("demo", f"{key}-{offset}"),
            )

        from imaging.models import Modality

        for ae_title, host, modality_type, station, location in MODALITIES:
            Modality.objects.get_or_create(
                ae_title=ae_title,
                defaults={
                    "host": host,
                    "modality_type": modality_type,
                    "station_name": station,
                    "location": location,
                },  # fmt: skip
            )

        placed = self.orders(actor, patients, vet, today)

        self.stdout.write(self.style.SUCCESS(
            f"Demo clinic ready: {len(owners)} owners, {len(patients)} animals, {placed} imaging orders."
        ))  # fmt: skip
        self.stdout.write("Log in at http://127.0.0.1:8000/ as (demo passwords, change them for real use):")
        for username, password, _, _, group, _ in STAFF:
            self.stdout.write(f"  {username:<12} {password:<18} {group}")
        titles = ", ".join(m[0] for m in MODALITIES)
        self.stdout.write(
            f"Demo modalities that may query the worklist and send images to VETPACS on port 11112: {titles}"
            " (from 127.0.0.1 only: a modality's host is set in the admin)"
        )
        self.stdout.write(
            "Today's X-ray worklist: findscu -W -aet DRROOM -aec VETPACS 127.0.0.1 11112 "
            '-k "ScheduledProcedureStepSequence[0].Modality=DX" -k PatientName -k AccessionNumber'
        )

    def orders(self, actor, patients, vet, today):
        """Orders for today and the coming days, once (keyed on a demo placer order number)."""
        from imaging.models import ImagingOrder, Modality, Procedure
        from imaging.orders.services import order_arrive, order_create

        referring = f"{vet.last_name}^{vet.first_name}"
        for number, key, code, offset, hhmm, reason, arrived in ORDERS:
            if ImagingOrder.objects.filter(placer_order_number=f"demo-{number}").exists():
                continue
            procedure = Procedure.objects.get(code=code)
            start = make_aware(datetime.combine(today + timedelta(days=offset), time.fromisoformat(hhmm)))
            order = order_create(
                actor=actor, patient=patients[key], procedure=procedure, scheduled_start=start,
                station=Modality.objects.get(modality_type=procedure.modality_type, ae_title__in=[m[0] for m in MODALITIES]),
                reason=reason, referring_vet=referring, placer_order_number=f"demo-{number}",
            )  # fmt: skip
            if arrived:
                order_arrive(actor=actor, order=order)
        return ImagingOrder.objects.filter(placer_order_number__startswith="demo-").count()
