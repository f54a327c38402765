"""Getting the data: verified HTTP downloads, Kaggle's client, guided manual sources, `doctor` and checksums."""

from .http import DownloadError, DownloadSettings, Fetched, VerificationError, allowed_hosts, fetch_file
from .layout import check_expected, select_sources

__all__ = ["DownloadError", "DownloadSettings", "Fetched", "VerificationError", "allowed_hosts", "check_expected",
           "fetch_file", "select_sources"]
