from typing import Any

from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "sharing"
    verbose_name = "Sharing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from imaging.ingest.index import text_srs_indexed

        # A text SR indexed in a study with an open consult may be its answer (sharing/answers.py).
        text_srs_indexed.connect(_text_srs_indexed, dispatch_uid="sharing.sr_answers")


def _text_srs_indexed(sender: Any, instance_ids: list[int], **kwargs: Any) -> None:
    from sharing.answers import sr_answers_file

    sr_answers_file(instance_ids)
