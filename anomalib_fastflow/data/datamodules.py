"""Short datamodule names for the anomalib CLI: ``--data MVTec`` and ``--data BTAD``.

anomalib 2.x calls them ``MVTecAD`` and ``BTech``; these subclasses only restore the names users
know from the FastFlow paper and anomalib 1.x. Importing ``anomalib_fastflow`` (which
``--model anomalib_fastflow.FastFlow`` does) makes them resolvable by their short names.
"""

from anomalib.data import BTech, MVTecAD


class MVTec(MVTecAD):
    """anomalib's ``MVTecAD`` datamodule under its paper name (same arguments)."""


class BTAD(BTech):
    """anomalib's ``BTech`` datamodule under its paper name, BTAD (same arguments)."""
