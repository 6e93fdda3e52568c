from collections.abc import Iterable

from celery import shared_task
from django.db import OperationalError, transaction

from patients.models import Owner, Patient
from patients.search import search_terms_refresh


@shared_task(autoretry_for=(OperationalError,), retry_backoff=True, max_retries=8)
def search_terms_rebuild(patient_ids: Iterable[int] = (), owner_ids: Iterable[int] = ()) -> None:
    """Rebuild the search words of these records (queued by ``manage.py search_reindex``)."""
    with transaction.atomic():
        search_terms_refresh(
            patients=list(Patient.objects.filter(pk__in=patient_ids)),
            owners=list(Owner.objects.filter(pk__in=owner_ids)),
        )
