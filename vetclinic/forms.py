from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """Every field rendered by templates/forms/field.html: label, widget, help, errors."""

    field_template_name = "forms/field.html"
