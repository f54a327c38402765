"""Keep secrets out of every output: standard streams, log records and error messages.

Used around third-party clients (Kaggle's) that print or log on their own: whatever they write passes through
`Redactor.scrub`, which replaces each known secret (and the Basic-auth form of a user:key pair) with `***`.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator

MASK = "***"
# Loggers of the libraries that run while a secret is in use.
WATCHED_LOGGERS = ("kaggle", "kaggle.api", "kaggle.api.kaggle_api_extended", "kagglesdk", "kagglesdk.kaggle_env",
                   "kagglesdk.kaggle_oauth", "kagglesdk.kaggle_creds", "urllib3", "urllib3.connectionpool",
                   "requests", "medmat", "medmat.download")


class Redactor:
    def __init__(self, secrets: Iterable[str] = (), pairs: Iterable[tuple[str, str]] = ()):
        found = {s for s in secrets if s and len(s) >= 4}
        for user, key in pairs:
            if user and key:
                found.add(base64.b64encode(f"{user}:{key}".encode()).decode())
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted(found, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    @contextlib.contextmanager
    def guard(self) -> Iterator[Redactor]:
        """While inside: sys.stdout, sys.stderr and the watched loggers only ever see scrubbed text."""
        log_filter = _ScrubFilter(self)
        loggers = [logging.getLogger(name) for name in WATCHED_LOGGERS]
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _ScrubStream(old_out, self), _ScrubStream(old_err, self)
        for logger in loggers:
            logger.addFilter(log_filter)
        try:
            yield self
        finally:
            for logger in loggers:
                logger.removeFilter(log_filter)
            sys.stdout, sys.stderr = old_out, old_err


class _ScrubFilter(logging.Filter):
    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redactor.scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redactor.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


class _ScrubStream:
    """A text stream that scrubs what it forwards (progress bars keep working: write and flush pass through)."""

    def __init__(self, inner, redactor: Redactor):
        self._inner = inner
        self._redactor = redactor

    def write(self, text: str) -> int:
        self._inner.write(self._redactor.scrub(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name):
        return getattr(self._inner, name)
