"""Share links and consults (issue 17): a study shown outside the clinic, to a specialist (the
read-only viewer, the DICOM files and a form for their opinion) or to the animal's owner (key
images with the vet's note), and the consult request whose answer comes back on the study."""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from imaging.models import Study


class ShareLink(models.Model):
    """One link. Only the sha256 of its token is kept (as an API key's: the raw token is shown
    once, when the link is made), so a copy of the database opens nothing."""

    class Kind(models.TextChoices):
        SPECIALIST = "specialist", "Specialist (viewer, DICOM, opinion)"
        OWNER = "owner", "Owner (key images and a note)"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="share_links")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    token_hash = models.CharField(max_length=64, unique=True)
    # Django's password hasher (salted PBKDF2): a short code must not be read back by brute force.
    access_code_hash = models.CharField(max_length=128, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_by_name = models.CharField(max_length=200, blank=True)
    # A specialist's link: the animal's earlier studies it may also read.
    priors = models.ManyToManyField(Study, blank=True, related_name="shared_as_prior")
    # An owner's link: the vet's words in plain language, shown above the images.
    note = models.TextField(blank=True)
    opened_count = models.PositiveIntegerField(default=0)
    last_opened_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display().split(' ')[0]} link #{self.pk}"

    def state(self, at: datetime | None = None) -> str:
        """active, expired or revoked, at ``at`` (now by default)."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= (at or now()) else "active"


class ConsultRequest(models.Model):
    """A vet asks a teleradiology service or a named specialist about the study."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        RECEIVED = "received", "Received (the link was opened)"
        REPORTED = "reported", "Reported"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="consults")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    requested_by_name = models.CharField(max_length=200, blank=True)
    destination = models.CharField(
        max_length=200, help_text="A teleradiology service, or a specialist's name/email"
    )
    clinical_question = models.TextField()
    history = models.TextField(blank=True)
    weight_kg = models.DecimalField(max_digits=7, decimal_places=3, null=True, blank=True)
    # The annotation set's key images when asked ({seriesUid, sopInstanceUid, frame}).
    key_images = models.JSONField(default=list, blank=True)
    priors = models.ManyToManyField(Study, blank=True, related_name="consulted_as_prior")
    link = models.OneToOneField(
        ShareLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="consult"
    )
    # A registered sending destination (a teleradiology service's DICOM node or STOW-RS endpoint):
    # the study (and the chosen priors) are sent there by sending.services.study_send, and an
    # answer by HL7 ORU^R01 or DICOM SR from it is filed here (sharing/answers.py).
    sent_to = models.ForeignKey(
        "sending.Destination", null=True, blank=True, on_delete=models.PROTECT, related_name="consults"
    )
    sends = models.ManyToManyField("sending.Send", blank=True, related_name="consults")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENT)
    created_at = models.DateTimeField(default=now)
    reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Consult #{self.pk} ({self.destination})"

    PLACER_PREFIX = "CONSULT-"

    @property
    def placer_number(self) -> str:
        """The number an answer quotes to name this consult: HL7 ORC-2 / OBR-2 (placer order
        number) of an ORU^R01, or a DICOM SR's Referenced Request Sequence > Placer Order Number /
        Imaging Service Request (0040,2016). At most 22 characters (HL7 EI.1 in 2.5 is 199; DICOM
        LO is 64)."""
        return f"{self.PLACER_PREFIX}{self.pk}"


class ConsultReport(models.Model):
    """A specialist's opinion, filed on the study. ``seen_at``: when the clinic acknowledged it
    (until then the study page shows a badge). It came through the specialist's link, an HL7
    ORU^R01 or a DICOM SR (``source``); ``source_id`` is the message's sender and control id or
    the SR's SOP Instance UID, unique per source, so one answer is filed once."""

    class Source(models.TextChoices):
        LINK = "link", "Share link"
        HL7 = "hl7", "HL7 ORU^R01"
        SR = "sr", "DICOM SR"

    class Status(models.TextChoices):
        # HL7 OBX-11 result status (table 0085) F, P and C; a DICOM SR's Completion Flag (PS3.3
        # C.17.2: PARTIAL is preliminary; UNVERIFIED alone is not, many final reports carry it).
        FINAL = "final", "Final"
        PRELIMINARY = "preliminary", "Preliminary"
        CORRECTED = "corrected", "Corrected (amends an earlier report)"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="consult_reports")
    link = models.ForeignKey(
        ShareLink, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    consult = models.ForeignKey(
        ConsultRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    author_name = models.CharField(max_length=200)
    text = models.TextField()
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.LINK)
    source_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FINAL)
    # The report this one supersedes: for a corrected HL7 result, the consult's latest before it;
    # for a DICOM SR, the one its Predecessor Documents Sequence names (sharing/answers.py).
    amends = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="amended_by"
    )
    created_at = models.DateTimeField(default=now)
    seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_id"], condition=~models.Q(source_id=""), name="consult_report_once"
            )
        ]

    def __str__(self) -> str:
        return f"Consult report by {self.author_name}"
