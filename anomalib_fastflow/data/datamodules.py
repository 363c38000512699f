"""Short datamodule names for the anomalib CLI: ``--data MVTec`` and ``--data BTAD``.

anomalib 2.x calls them ``MVTecAD`` and ``BTech``; these subclasses restore the names users know
from the FastFlow paper and anomalib 1.x. Importing ``anomalib_fastflow`` (which
``--model anomalib_fastflow.FastFlow`` does, so give ``--model`` before ``--data``) makes them
resolvable by their short names. They download the dataset like anomalib's when the category
folder is missing, and say which folder was missing when that fails (e.g. offline).
"""

from anomalib.data import BTech, MVTecAD


class _ExplainMissingFolder:
    """``prepare_data`` that turns a failed download into an error naming the missing folder."""

    def prepare_data(self) -> None:
        """Download the dataset when ``root/category`` is missing, as anomalib does.

        Raises:
            FileNotFoundError: The folder is missing and the download failed.
        """
        try:
            super().prepare_data()
        except Exception as error:
            folder = self.root / self.category
            msg = (
                f"Dataset folder {folder} does not exist and downloading {type(self).__name__} failed "
                f"({type(error).__name__}: {error}). Point --data.root at a local copy."
            )
            raise FileNotFoundError(msg) from error


class MVTec(_ExplainMissingFolder, MVTecAD):
    """anomalib's ``MVTecAD`` datamodule under its paper name (same arguments)."""


class BTAD(_ExplainMissingFolder, BTech):
    """anomalib's ``BTech`` datamodule under its paper name, BTAD (same arguments)."""
