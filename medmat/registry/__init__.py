"""The registry: manifests as validated data (vocabulary, licenses, sources, subsets, CG experiments).

This package imports no other medmat package; `medmat.validation` composes its checks with the layout checks.
"""

from .checks import check_registry
from .loader import Registry, default_manifests_dir, load_registry
from .models import LicenseRegistry, Source, Subset, Vocabulary
from .problems import Problem

__all__ = ["LicenseRegistry", "Problem", "Registry", "Source", "Subset", "Vocabulary", "default_manifests_dir",
           "load_registry", "check_registry"]
