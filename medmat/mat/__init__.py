"""The MAT data model: the unified schema, the QA format and generator, leak-free splits and CG training plans.

Pure functions over rows and keys; nothing here reads images or archives."""
