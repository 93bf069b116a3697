"""Collection, media and segment tables. Imported by ``core.models``."""
