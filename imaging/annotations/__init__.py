"""Annotations and measurements on a study: saved per study, versioned, exported as DICOM."""
