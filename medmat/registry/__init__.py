"""The registry: manifests as validated data (vocabulary, licenses, sources, subsets)."""

from .checks import check_registry
from .loader import Registry, default_manifests_dir, load_registry
from .models import LicenseRegistry, Source, Subset, Vocabulary
from .problems import Problem


def validate(root=None) -> tuple[Registry, list[Problem]]:
    """Load and cross-check every manifest under `root`; returns the registry and all problems, sorted."""
    registry, problems = load_registry(root)
    problems += check_registry(registry)
    from ..cg import check_cg_manifests  # lazy: medmat.cg imports the registry; checks manifests/cg/

    problems += check_cg_manifests(registry)
    return registry, sorted(set(problems))


__all__ = ["LicenseRegistry", "Problem", "Registry", "Source", "Subset", "Vocabulary", "default_manifests_dir",
           "load_registry", "check_registry", "validate"]
