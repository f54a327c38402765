"""Per-source adapters for layouts no generic family expresses: `builders/<source_id>.py` (dashes -> underscores)
defining `Params` (a subclass of medmat.adapters.AdapterParams) and `iter_items(root, params)`."""
