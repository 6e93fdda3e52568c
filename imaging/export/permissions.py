"""Who may take what out of the clinic.

Everyone on the staff may read a signed report and so may print its PDF for an owner or a
referring vet (``imaging.view_report``, every role). The images themselves, as DICOM on a stick
or with the vet's marks burned in, go out as part of the clinical record on a vet's decision:
that needs the permission to annotate the study (``imaging.change_annotationset``: the vets,
radiologists and admins, not the front desk, vetclinic/roles.py).
"""

EXPORT_IMAGES = "imaging.change_annotationset"
EXPORT_REPORT = "imaging.view_report"
