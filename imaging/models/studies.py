"""Registered modalities and the index of what they sent: studies, series, instances."""

from django.contrib.postgres.indexes import OpClass
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.functions import Upper
from django.utils.timezone import now

from patients.models import Patient


class Modality(models.Model):
    """A device allowed to talk to our DICOM node: its AE title and (optionally) its address."""

    ae_title = models.CharField("AE title", max_length=16, unique=True)
    host = models.CharField(max_length=255, blank=True, help_text="Empty: any address")
    port = models.PositiveIntegerField(null=True, blank=True, help_text="For sending to it (C-MOVE)")
    modality_type = models.CharField(
        max_length=16, help_text="DICOM Modality: DX, CR, US, CT, MR, ES, XA, OT…"
    )
    station_name = models.CharField(max_length=16, blank=True)
    location = models.CharField(max_length=64, blank=True)
    active = models.BooleanField(default=True)
    # What the node may do (checked per request by imaging/dicom/net/access.py): a modality stores
    # and pulls its worklist; a workstation queries and retrieves; a PACS or a workstation is
    # where C-MOVE may send (to ``host``:``port``, PS3.4 C.4.2: the move destination is named by
    # AE title, and only a registered one is ever connected to).
    # MPPS goes with storing, not querying: N-CREATE and N-SET change an order's state, and the
    # one that sends them is the modality that acquires and stores (IHE Scheduled Workflow's
    # Acquisition Modality); the worklist is the one read a modality makes.
    may_store = models.BooleanField(
        "may store", default=True, help_text="C-STORE, STOW-RS, Storage Commitment, MPPS"
    )
    may_query = models.BooleanField("may query", default=True, help_text="Worklist and study C-FIND")
    may_retrieve = models.BooleanField("may retrieve", default=False, help_text="C-MOVE and C-GET")
    move_destination = models.BooleanField(
        "move destination", default=False, help_text="C-MOVE may send here"
    )
    # DICOM TLS when we connect to the node (C-MOVE's sub-operations, a Storage Commitment
    # report on a new association): PS3.15 B.9, the BCP 195 TLS Secure Transport Connection
    # Profile (B.1's Basic TLS is retired). Its certificate is checked against these authorities,
    # else the listener's DICOM_TLS_CA, else the system's; ours (DICOM_TLS_CERT) is presented.
    tls = models.BooleanField(
        "use TLS", default=False, help_text="C-MOVE and Storage Commitment reports to it go over TLS"
    )
    tls_ca_certificates = models.TextField(
        "TLS authorities",
        blank=True,
        help_text=(
            "PEM certificates of the authorities that sign its certificate (or its own certificate); "
            "empty: the listener's DICOM_TLS_CA, else the system's authorities"
        ),
    )
    tls_check_hostname = models.BooleanField(
        "TLS: check its host name",
        default=True,
        help_text="Its certificate must name the host above (turn off for a device whose certificate does not)",
    )
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["ae_title"]
        verbose_name_plural = "modalities"

    def __str__(self):
        return f"{self.ae_title} ({self.modality_type}{', ' + self.location if self.location else ''})"

    def clean(self):
        if self.move_destination and not (self.host and self.port):
            raise ValidationError({"port": "A move destination needs a host and a port to be sent to."})
        if self.tls and not (self.host and self.port):
            raise ValidationError({"port": "TLS is for connecting to the node: it needs a host and a port."})
        if self.tls_ca_certificates.strip():
            from imaging.dicom.net.tls import authorities_check

            problem = authorities_check(self.tls_ca_certificates)
            if problem:
                raise ValidationError({"tls_ca_certificates": problem})

    def address_checked(self):
        """Whether the listener checks where it calls from (dicom/net/access.association_allowed):
        without a host, anyone who knows the AE title may store and query."""
        return bool(self.host)


class Study(models.Model):
    class Link(models.TextChoices):
        # How the study found its animal (imaging/ingest/linking.py), or why it did not.
        ORDER = "order", "Linked by order"
        PATIENT_ID = "patient_id", "Linked by patient ID"
        MANUAL = "manual", "Linked by staff"
        UNMATCHED = "unmatched", "Waiting for reconciliation"

    study_instance_uid = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.PROTECT, related_name="studies"
    )
    # The order the images answer (by accession number or Study Instance UID, or by staff).
    order = models.ForeignKey(
        "imaging.ImagingOrder", null=True, blank=True, on_delete=models.SET_NULL, related_name="studies"
    )
    link = models.CharField(max_length=16, choices=Link.choices, default=Link.UNMATCHED)
    # Why a study is in the reconciliation queue although it named a patient (name or species
    # disagreed), or anything else staff should look at.
    flag = models.CharField(max_length=200, blank=True)
    accession_number = models.CharField(max_length=16, blank=True)
    study_date = models.DateField(null=True, blank=True)
    study_time = models.TimeField(null=True, blank=True)
    description = models.CharField(max_length=64, blank=True)
    referring_physician = models.CharField(max_length=64, blank=True)
    # What the images said about the animal, as received (before any rewrite).
    dicom_patient_id = models.CharField(max_length=64, blank=True)
    dicom_patient_name = models.CharField(max_length=64, blank=True)
    dicom_species = models.CharField(max_length=64, blank=True)
    dicom_birth_date = models.DateField(null=True, blank=True)
    dicom_patient_sex = models.CharField(max_length=16, blank=True)
    dicom_breed = models.CharField(max_length=64, blank=True)
    dicom_sex_neutered = models.CharField(max_length=16, blank=True)
    dicom_responsible_person = models.CharField(max_length=64, blank=True)
    dicom_responsible_person_role = models.CharField(max_length=16, blank=True)
    # The headers' Patient's Name as Query/Retrieve matches it: in capitals, since person names
    # match case-insensitively (PS3.4 C.2.2.2.1), trailing empty components dropped (as
    # matching.person_name_pattern drops them from a key); the counterpart of
    # Patient.dicom_name_key for a study not linked to an animal (imaging/archive/query.py).
    dicom_name_key = models.GeneratedField(
        expression=Upper(Func(F("dicom_patient_name"), template="RTRIM(%(expressions)s, '^')")),
        output_field=models.CharField(max_length=64),
        db_persist=True,
    )
    study_id = models.CharField("study ID", max_length=16, blank=True)  # Study ID (0020,0010)
    received_at = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-study_date", "-study_time", "-id"]
        verbose_name_plural = "studies"
        indexes = [
            models.Index(fields=["patient", "-study_date"], name="study_patient_date"),  # the patient page
            models.Index(fields=["study_date"], name="study_date"),  # a day's studies
            models.Index(fields=["accession_number"], name="study_accession"),  # linking, search
            models.Index(  # the reconciliation queue
                fields=["received_at"], name="study_unmatched", condition=Q(link="unmatched")
            ),
            # Query/Retrieve on the headers of studies not linked to an animal (imaging/archive/
            # query.py): Patient's Name by prefix (vetclinic/db.py StartsWith, hence the pattern
            # operator class) and Patient ID.
            models.Index(
                fields=["dicom_name_key"],
                name="study_unlinked_name",
                opclasses=["varchar_pattern_ops"],
                condition=Q(patient__isnull=True),
            ),  # fmt: skip
            models.Index(
                fields=["dicom_patient_id"], name="study_unlinked_id", condition=Q(patient__isnull=True)
            ),
            # The reading list's referring vet: a prefix of the name in capitals (StartsWith).
            models.Index(
                OpClass(Upper("referring_physician"), name="text_pattern_ops"), name="study_referring_key"
            ),
        ]

    def __str__(self):
        return f"{self.study_date or ''} {self.description or self.study_instance_uid}".strip()


class Series(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField(max_length=64, unique=True)
    modality = models.CharField(max_length=16, blank=True)
    series_number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=64, blank=True)
    body_part = models.CharField(max_length=64, blank=True)
    station_name = models.CharField(max_length=16, blank=True)
    received_from = models.CharField(max_length=16, blank=True)  # the sender's AE title
    thumbnail_key = models.CharField(max_length=255, blank=True)  # rendered by a task

    class Meta:
        ordering = ["series_number", "id"]
        verbose_name_plural = "series"
        indexes = [
            # ModalitiesInStudy: the studies with a series of a modality (imaging/archive/query.py).
            models.Index(fields=["modality", "study"], name="series_modality_study"),
            # The reading list's station: the studies with a series sent by an AE title.
            models.Index(fields=["received_from", "study"], name="series_sender_study"),
        ]

    def __str__(self):
        return f"{self.modality} {self.series_number or ''} {self.description}".strip()


class Instance(models.Model):
    """One stored DICOM object, the current version of its SOP Instance UID."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(max_length=64, unique=True)
    sop_class_uid = models.CharField(max_length=64)
    transfer_syntax_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    number_of_frames = models.PositiveIntegerField(default=1)
    file_size = models.PositiveBigIntegerField()
    storage_key = models.CharField(max_length=255, unique=True)
    received_from = models.CharField(max_length=16, blank=True)
    received_at = models.DateTimeField(default=now)
    # A different object that arrived under this SOP Instance UID replaced an earlier one;
    # the earlier ones are kept as InstanceVersion rows.
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["instance_number", "id"]

    def __str__(self):
        return self.sop_instance_uid


class InstanceMetadata(models.Model):
    """An instance's attributes as DICOM JSON (PS3.18 F.2) without its bulk data, computed when it
    is indexed (imaging/archive/metadata.py) so that WADO-RS ``/metadata`` of a large series is
    one query, not a parse of every file (dcm4chee keeps series metadata for the same reason).
    ``storage_key`` names the stored object it describes: a row whose key is not its instance's
    describes an older version and is computed again when read."""

    instance = models.OneToOneField(
        Instance, primary_key=True, on_delete=models.CASCADE, related_name="metadata"
    )
    storage_key = models.CharField(max_length=255)
    # The JSON object's text, BulkDataURIs relative to the instance (metadata.bulk_uris_resolve):
    # served as kept, joined, never parsed again. lz4-compressed on PostgreSQL (migration 0008).
    document = models.TextField()

    class Meta:
        verbose_name_plural = "instance metadata"

    def __str__(self) -> str:
        return f"metadata of {self.instance_id}"


class InstanceVersion(models.Model):
    """An earlier object stored under an instance's SOP Instance UID, or its header before a
    reconciliation rewrite: nothing received is ever thrown away."""

    class Reason(models.TextChoices):
        REPLACED = "replaced", "Replaced by a different object with the same UID"
        REWRITTEN = "rewritten", "Patient attributes rewritten on linking"

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    storage_key = models.CharField(max_length=255)
    file_size = models.PositiveBigIntegerField()
    received_from = models.CharField(max_length=16, blank=True)
    received_at = models.DateTimeField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "version"], name="instance_version_unique")
        ]

    def __str__(self):
        return f"{self.instance_id} v{self.version}"
