"""DIMSE status codes we answer with, by name (PS3.4 B.2.3 Storage, PS3.7 C.4)."""

SUCCESS = 0x0000
# Storage Service Class (PS3.4 Table B.2-1)
OUT_OF_RESOURCES = 0xA700  # Refused: out of resources (we could not keep the object)
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900  # Error: data set does not match SOP class
CANNOT_UNDERSTAND = 0xC000  # Error: cannot understand (malformed, truncated)

# C-FIND, Modality Worklist (PS3.4 Table K.4-1) and Query/Retrieve (Table C.4-1) alike
PENDING = 0xFF00  # a match follows; all optional keys supported
PENDING_OPTIONAL_KEYS_UNSUPPORTED = 0xFF01  # a match follows; some optional keys were not matched
CANCELLED = 0xFE00  # matching ended by C-CANCEL
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900  # Failed: identifier does not match SOP class
UNABLE_TO_PROCESS = 0xC000  # Failed: unable to process (0xC000-0xCFFF)

# General (PS3.7 C.5): the caller may not use this service (a node without "may query").
NOT_AUTHORIZED = 0x0124

# MPPS N-CREATE / N-SET (PS3.4 F.7.2.1.4 and F.7.2.2.4, PS3.7 C.4)
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110  # e.g. the step is final and may no longer be updated (Error ID A710)
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_OBJECT_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
MISSING_ATTRIBUTE_VALUE = 0x0121

# Storage Commitment N-ACTION (PS3.4 J.3.2.1.1, PS3.7 10.1.4.1.10 and C.5)
NO_SUCH_ACTION = 0x0123  # an Action Type ID other than 1 (Request Storage Commitment)

# Any DIMSE service (PS3.7 Annex C, general status 0124H "Refused: Not Authorized"): the calling
# node is registered but not allowed this (imaging.Modality may_store / may_query).
NOT_AUTHORIZED = 0x0124


def error_comment(text: object) -> str:
    """An Error Comment (0000,0902) is LO (PS3.7 C.4, PS3.5 6.2): at most 64 characters, and no
    backslash (a value separator) nor control character; an error may quote the bytes it found."""
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in str(text))[:64]


# Query/Retrieve C-MOVE and C-GET (PS3.4 C.4.2.1.4, C.4.3.1.3; PS3.7 C.5)
NOT_AUTHORIZED = 0x0124  # Refused: not authorized (the caller may not retrieve)
OUT_OF_RESOURCES_MATCHES = 0xA701  # Refused: out of resources, unable to calculate number of matches
SUB_OPERATIONS_FAILED = 0xA702  # Refused: out of resources, unable to perform sub-operations
MOVE_DESTINATION_UNKNOWN = 0xA801  # Refused: move destination unknown
SUB_OPERATIONS_WARNING = 0xB000  # Sub-operations complete, one or more failures or warnings
