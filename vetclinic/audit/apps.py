from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "vetclinic.audit"
    label = "audit"
    verbose_name = "Audit log"
