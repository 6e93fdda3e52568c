"""Hanging protocols: how the viewer lays out a study when it opens, by modality, body part and
species (a thorax three-view: the right lateral, the left lateral and the VD side by side).
Which protocol fits a study and which series goes where is imaging/studies/hanging.py."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now

from patients.models import Species


def terms(text: str) -> list[str]:
    """A comma-separated field's entries, trimmed, without the empty ones."""
    return [term.strip() for term in text.split(",") if term.strip()]


class HangingProtocol(models.Model):
    class Layout(models.TextChoices):
        # The layouts the viewer's display has (viewer/src/display.js LAYOUTS).
        ONE = "1x1", "1×1: one viewport"
        TWO = "1x2", "1×2: two side by side"
        FOUR = "2x2", "2×2: four"

    name = models.CharField(max_length=64)
    modality = models.CharField(max_length=16, help_text="DICOM Modality (0008,0060): DX, CR, CT, US, MR…")
    body_part = models.CharField(
        max_length=128,
        blank=True,
        help_text=(
            "Body Part Examined (0018,0015), any of these, comma-separated (e.g. CHEST, THORAX); "
            "empty: any body part"
        ),
    )
    species = models.ForeignKey(
        Species, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Empty: any species",
    )  # fmt: skip
    layout = models.CharField(max_length=3, choices=Layout.choices, default=Layout.ONE)
    active = models.BooleanField(default=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["modality", "name"]

    def __str__(self):
        return self.name

    def body_parts(self) -> list[str]:
        return [part.upper() for part in terms(self.body_part)]

    def clean(self):
        self.modality = self.modality.strip().upper()


class HangingViewport(models.Model):
    """One viewport of a protocol, in order (1 is top left, then along the row): the series that
    fits it best goes there. A series fits by its DICOM View Position or by a keyword in what
    describes it (series description, view code meaning, protocol name)."""

    protocol = models.ForeignKey(HangingProtocol, on_delete=models.CASCADE, related_name="viewports")
    position = models.PositiveSmallIntegerField(help_text="1 top left, 2 to its right, 3 below the first…")
    label = models.CharField(max_length=64, blank=True, help_text="Shown on the viewport, e.g. Right lateral")
    view_positions = models.CharField(
        "view positions",
        max_length=64,
        blank=True,
        help_text="View Position (0018,5101) values, comma-separated, e.g. RL, RLD (DICOM: AP, PA, LL, RL…)",
    )
    keywords = models.CharField(
        max_length=255,
        blank=True,
        help_text=(
            "Words or phrases, comma-separated, found whole in the series description or view, "
            "e.g. right lateral, R lat, RL"
        ),
    )

    class Meta:
        ordering = ["protocol", "position"]
        constraints = [
            models.UniqueConstraint(fields=["protocol", "position"], name="hanging_viewport_position_unique")
        ]

    def __str__(self):
        return f"{self.position}: {self.label or self.keywords or self.view_positions}"

    def clean(self):
        if not (terms(self.view_positions) or terms(self.keywords)):
            raise ValidationError("Give a view position or a keyword the series is found by.")
