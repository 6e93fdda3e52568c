"""Taking a study out of VetPACS (issue 17, "Export"): services the study page's links and the
REST API (integrations/api/exports.py) both call.

- study_zip.py: a study, or some of its series, as a ZIP for a USB stick or CD: the stored DICOM
  files byte for byte under IHE PDI file IDs with a DICOMDIR (PS3.10 8, pydicom FileSet), a
  JPEG preview per series and a README.TXT, streamed as it is written.
- burned.py: one image rendered (imaging/archive/rendering.py) with the saved annotations drawn
  on it.
- report_pdf.py: the signed report as a PDF with the clinic's letterhead and the key images.
"""
