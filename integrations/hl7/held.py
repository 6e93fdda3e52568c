"""Orders held for an unmapped service code (integrations.HL7HeldOrder), made once it is mapped.

A new mapping in the crosswalk, wherever it is made (the admin, the REST crosswalk), is applied
after its transaction commits (``mapping_saved``, connected in integrations/apps.py): the
animals that carried the code move to what it maps to (patients/crosswalk.py) and the orders
that waited for it are made, each by running its message again.
"""

import logging
from typing import Any

from django.db import transaction

from integrations.hl7.inbound import message_rerun
from integrations.hl7.messages import HL7Error
from integrations.models import HL7HeldOrder
from patients.crosswalk import code_mapping_apply
from patients.models import CodeMapping
from vetclinic.audit.services import Actor

log = logging.getLogger("integrations.hl7")


def held_orders_release(*, mapping: CodeMapping) -> tuple[int, int]:
    """Run again the messages of the orders waiting for ``mapping``'s code; returns (made,
    failed). One that fails (say its animal has since died) keeps waiting, with the error."""
    made = failed = 0
    held = HL7HeldOrder.objects.filter(
        code__system=mapping.system, code__kind=mapping.kind, code__external_code=mapping.external_code
    ).order_by("id")
    for order in held:
        if held_order_make(held=order) is None:
            made += 1
        else:
            failed += 1
    return made, failed


def held_order_make(*, held: HL7HeldOrder) -> str | None:
    """Run a held order's message again: None once the order is made (the handler removes
    the held row then), else why not (kept on the row)."""
    error = message_rerun(text=held.raw, peer=held.peer, message=held.message)
    if error is None and HL7HeldOrder.objects.filter(pk=held.pk).exists():
        error = HL7Error(f"OBR-4 service code {held.code.external_code} is still not mapped", code=103)
    if error is not None:
        held.error = str(error.args[0])[:2000]
        held.save(update_fields=["error"])
        return str(error.args[0])
    return None


def crosswalk_apply(*, mapping: CodeMapping, actor: Actor | None = None) -> tuple[int, int, int]:
    """Everything that waited for ``mapping``: animals moved, held orders made."""
    actor = actor or Actor.system("crosswalk")
    moved = code_mapping_apply(actor=actor, mapping=mapping)
    made, failed = held_orders_release(mapping=mapping)  # a service code, or a species one
    if moved or made or failed:
        log.info(
            "crosswalk %s: %d animal(s) moved, %d held order(s) made, %d still held",
            mapping,
            moved,
            made,
            failed,
        )
    return moved, made, failed


def mapping_saved(
    sender: type[CodeMapping], instance: CodeMapping, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    """post_save of CodeMapping: apply it once it is committed. Not in the saving transaction,
    so that a mapping is kept even if applying it fails (it is applied again from the admin's
    list of unmapped codes)."""
    if raw:
        return
    pk = instance.pk

    def apply() -> None:
        mapping = CodeMapping.objects.filter(pk=pk).select_related("species", "breed", "procedure").first()
        if mapping is None:
            return
        try:
            crosswalk_apply(mapping=mapping)
        except Exception:
            log.exception("applying crosswalk entry %s failed", mapping)

    transaction.on_commit(apply)
