"""Warning filters for the ``anomalib-fastflow`` command: two deprecations that third-party imports
print above every usage line, matched by the warning's module and message. Nothing of ours is hidden.

Imported by ``cli`` before anything that imports anomalib or timm (filters only act on warnings
issued after them); the library itself filters nothing.
"""

import warnings

THIRD_PARTY_DEPRECATIONS = (
    # timm re-exports its old ``timm.models.layers`` path, which anomalib still imports
    ("timm\\.models\\.layers", "Importing from timm\\.models\\.layers is deprecated"),
    # anomalib's own dinomaly model imports its deprecated dinov2 package when anomalib.models loads
    (
        "anomalib\\.models\\.image\\.dinomaly",
        "The anomalib\\.models\\.components\\.dinov2 package is deprecated",
    ),
)


def filter_third_party_deprecations() -> None:
    """Ignore the warnings of ``THIRD_PARTY_DEPRECATIONS`` (module and message both match), nothing else."""
    for module, message in THIRD_PARTY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning, module=module)


filter_third_party_deprecations()
