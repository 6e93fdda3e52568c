"""What an export names: the study, its series, its images, checked before anything is sent."""

from imaging.models import Instance, Study


class NotExportable(Exception):
    """What was asked for cannot be exported as it is: ``field`` names the parameter or the
    record, the message says why (the adapters answer 409, or 400 for a bad parameter)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class NotStored(NotExportable):
    """A series, instance or frame named that the study does not have (the adapters answer 404)."""


def study_instances(*, study: Study, series_uids: list[str] | None = None) -> list[Instance]:
    """The study's stored instances (all, or of the series named), in series then instance order.
    Raises NotStored (``series``) naming a series UID the study does not have, or when nothing
    is stored."""
    found = Instance.objects.filter(series__study=study).select_related("series")
    if series_uids:
        known = set(study.series.filter(series_instance_uid__in=series_uids).values_list(
            "series_instance_uid", flat=True))  # fmt: skip
        unknown = [uid for uid in series_uids if uid not in known]
        if unknown:
            raise NotStored("series", f"The study has no series {', '.join(unknown)}.")
        found = found.filter(series__series_instance_uid__in=series_uids)
    instances = list(found.order_by("series__series_number", "series_id", "instance_number", "id"))
    if not instances:
        raise NotStored("series" if series_uids else "study", "There is nothing stored to export.")
    return instances
