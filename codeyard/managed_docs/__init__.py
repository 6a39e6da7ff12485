"""Managed project documents: generated blocks that regenerate between markers, so whatever a
person writes around them survives (Laravel seed: PROJECT_MAP, DATABASE_SCHEMA,
ARCHITECTURE_DIAGRAMS). Pure: rendering and merging, no I/O."""
