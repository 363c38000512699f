"""A folder of images in MVTec AD's layout as anomalib's ``Folder`` datamodule, masks optional.

``anomalib train --data Folder`` takes every path as an argument; the benchmark, ``compare-training``
and the demo take a category folder laid out as MVTec AD's and read it the same way::

    <category>/train/good/*.png
    <category>/test/good/*.png
    <category>/test/<defect>/*.png                (one folder per defect kind)
    <category>/ground_truth/<defect>/*.png        (optional: pixel masks, sorted as the images)

Without ``ground_truth`` the datamodule has image labels only, and pixel metrics are left out.
The whole test split is tested (``val_split_mode="same_as_test"``, as anomalib's ``MVTecAD``).
"""

from pathlib import Path

from anomalib.data import Folder

from ..errors import MissingInputError

NORMAL = "good"


def folder_datamodule(category: Path, seed: int = 0, **loading: object) -> Folder:
    """anomalib's ``Folder`` over ``category`` (layout above); ``loading`` goes to its constructor
    (batch sizes, workers).

    Raises:
        MissingInputError: (a ``FileNotFoundError``) ``category/train/good`` or ``category/test``
            holds no folder of images.
    """
    category = Path(category)
    train, test = category / "train" / NORMAL, category / "test"
    defects = (
        sorted(folder.name for folder in test.iterdir() if folder.is_dir() and folder.name != NORMAL)
        if test.is_dir()
        else []
    )
    if not train.is_dir() or not defects:
        msg = (
            f"{category} is not a dataset folder: it needs train/{NORMAL} and test/<defect> folders "
            f"(found train/{NORMAL}: {train.is_dir()}, defect folders: {defects or 'none'})."
        )
        raise MissingInputError(msg)
    masks = [category / "ground_truth" / defect for defect in defects]
    has_masks = all(folder.is_dir() for folder in masks)
    return Folder(
        name=category.name,
        root=category,
        normal_dir=train.relative_to(category),
        abnormal_dir=[Path("test") / defect for defect in defects],
        normal_test_dir=(test / NORMAL).relative_to(category) if (test / NORMAL).is_dir() else None,
        mask_dir=[mask.relative_to(category) for mask in masks] if has_masks else None,
        val_split_mode="same_as_test",
        seed=seed,
        **loading,
    )
