"""DIMSE status codes we answer with, by name (PS3.4 B.2.3 Storage, PS3.7 C.4)."""

SUCCESS = 0x0000
# Storage Service Class (PS3.4 Table B.2-1)
OUT_OF_RESOURCES = 0xA700  # Refused: out of resources (we could not keep the object)
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900  # Error: data set does not match SOP class
CANNOT_UNDERSTAND = 0xC000  # Error: cannot understand (malformed, truncated)
