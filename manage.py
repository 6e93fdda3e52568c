#!/usr/bin/env python
"""Django's command-line utility for VetPACS."""

import os
import sys

PROCESS_OF_COMMAND = {"dicom_listener": "dicom", "hl7_listener": "hl7"}


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vetclinic.settings")
    # The listeners' database options are declared in settings by process role (VETPACS_PROCESS).
    role = PROCESS_OF_COMMAND.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if role:
        os.environ.setdefault("VETPACS_PROCESS", role)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
