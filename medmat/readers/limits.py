"""The per-sample limit, importable without numpy or any image library (the CLI's default comes from here)."""

DEFAULT_MAX_BYTES = 4 * 1024**3
