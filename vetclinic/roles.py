"""The staff groups and what each may do. Migrations call ``roles_sync`` when this changes."""

RECORD = ["owner", "patient", "ownership", "visit", "weightrecord"]
VOCABULARY = ["species", "breed", "codemapping"]
IMAGING = [
    "modality",
    "study",
    "series",
    "instance",
    "instanceversion",
    "procedure",
    "imagingorder",
    "orderstatuschange",
    "performedprocedurestep",
    "report",
    # The viewer's hanging protocols (imaging/models/hanging.py): the admin edits them.
    "hangingprotocol",
    "hangingviewport",
    # Annotations (imaging/models/annotations.py): kept, versioned, by the vets.
    "annotationset",
    "annotationversion",
]
# Seeing studies and reconciling them (imaging/reconcile/) is everyday work for every role.
RECONCILE = ["view_study", "view_series", "change_study"]
# Scheduling imaging (imaging/orders/) and the day board.
SCHEDULE = ["view_imagingorder", "add_imagingorder", "change_imagingorder", "view_procedure", "view_modality"]
# Writing and signing reports (imaging/reports/) is the vets' work; everyone may read them.
REPORT = ["view_report", "add_report", "change_report"]
# Measuring and annotating (imaging/annotations/) is the vets' work too; everyone may see them.
ANNOTATE = ["view_annotationset", "add_annotationset", "change_annotationset", "view_annotationversion"]
# Sending studies out (sending/): vets and radiologists send; an admin manages destinations and rules.
SEND = ["view_send", "add_send", "view_destination"]

ROLES = {
    "front desk": {
        "patients": [f"{verb}_{model}" for model in RECORD for verb in ("view", "add", "change")]
        + [f"view_{model}" for model in VOCABULARY],
        "imaging": RECONCILE + SCHEDULE + ["view_report", "view_annotationset", "view_annotationversion"],
    },
    "veterinarian": {
        "patients": [f"{verb}_{model}" for model in RECORD for verb in ("view", "add", "change")]
        + [f"view_{model}" for model in VOCABULARY]
        + ["merge_patient"],
        "imaging": RECONCILE + SCHEDULE + REPORT + ANNOTATE + ["view_performedprocedurestep"],
        "sending": SEND,
    },
    "radiologist": {
        "patients": [f"view_{model}" for model in RECORD + VOCABULARY],
        "imaging": RECONCILE
        + REPORT
        + ANNOTATE
        + ["view_instance", "view_imagingorder", "view_procedure", "view_modality"],
        "sending": SEND,
    },
    "admin": {
        "patients": [
            f"{verb}_{model}" for model in RECORD + VOCABULARY for verb in ("view", "add", "change", "delete")
        ]
        + ["merge_patient"],
        "imaging": [f"{verb}_{model}" for model in IMAGING for verb in ("view", "add", "change", "delete")],
        "audit": ["view_auditentry"],
        "sending": SEND
        + [
            f"{verb}_{model}"
            for model in ("destination", "routingrule")
            for verb in ("view", "add", "change", "delete")
        ]
        + ["view_routinglog"],
        # The PMS integrations: API clients and their keys, webhooks, HL7 endpoints and log.
        "integrations": [
            f"{verb}_{model}"
            for model in ("apiclient", "webhooksubscription", "hl7endpoint")
            for verb in ("view", "add", "change", "delete")
        ]
        + ["view_hl7message", "view_hl7heldorder", "view_webhookdelivery", "change_webhookdelivery"],
        "auth": ["view_user", "add_user", "change_user", "view_group"],
    },
}


def _in_state(apps, app_label, codename):
    """Whether the migration state has the permission's model yet: an early migration (the
    clinic record's staff groups) runs before the imaging app's tables exist, and a later
    migration calls this again."""
    try:
        apps.get_model(app_label, codename.split("_", 1)[1])
    except LookupError:
        return False
    return True


def roles_sync(apps):
    """Create the groups and give each exactly its permissions (idempotent)."""
    from django.contrib.auth.management import create_permissions

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for app_config in apps.get_app_configs():
        # A migration's app configs have no models module, and create_permissions skips those.
        # Put back what was there: the project's own registry (tests' reference_data) keeps
        # its modules, else the next flush's post_migrate skips every app and leaves no
        # content types behind while their ids stay cached.
        models_module = getattr(app_config, "models_module", None)
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = models_module
    # Every role's permissions read in one query (one each was 300 queries, a second a test's
    # reference data); one that is not there still fails loudly, as .get() did.
    known = {
        (permission.content_type.app_label, permission.codename): permission
        for permission in Permission.objects.select_related("content_type")
    }
    for group_name, by_app in ROLES.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        permissions = [
            known[(app_label, codename)]
            for app_label, codenames in by_app.items()
            for codename in codenames
            if _in_state(apps, app_label, codename)
        ]
        group.permissions.set(permissions)
