"""Per-source adapters for layouts no family expresses: `medmat/sources/custom/<source_id>.py` (dashes become
underscores) defining `Params` (a subclass of `medmat.sources.base.AdapterParams`) and `iter_items(root, params)`.
A custom adapter imports only `medmat.sources.base`, `medmat.sources.tables` and the families, never another
custom adapter."""
