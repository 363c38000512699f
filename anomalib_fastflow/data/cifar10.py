"""CIFAR-10 one-class (paper Table 4): one class is normal, the nine others are anomalies.

Training takes the normal class's 5,000 training images; testing takes all 10,000 test images,
that class's 1,000 as normal and the other 9,000 as anomalous; image-level AUROC only (no masks),
averaged over the ten classes in the paper. ``CIFAR10`` (``--data CIFAR10`` once the plugin is
imported) reads CIFAR-10 in torchvision's own format (``<root>/cifar-10-batches-py``, the pickled
batches), downloads it with torchvision where ``download=True`` and a network are there, and lays
the class out once as PNG files for anomalib's ``Folder`` datamodule::

    <root>/one_class/<class>/train/good/*.png      the class's training images
    <root>/one_class/<class>/test/good/*.png       the class's test images
    <root>/one_class/<class>/test/anomalous/*.png  every other class's test images

The 32 px images are upsampled to the backbone's input size by the model's pre-processor.
"""

import pickle
from pathlib import Path

import numpy as np
from anomalib.data import Folder
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
BATCHES = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_FILES = ("test_batch",)


def read_batches(folder: Path, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 32, 32, 3)`` uint8 and labels ``(N,)`` from torchvision's pickled CIFAR-10 batches.

    Raises:
        FileNotFoundError: A batch file is missing (naming it).
    """
    images, labels = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            msg = f"CIFAR-10 batch {path} not found: give the folder that holds {BATCHES}, or download=True."
            raise FileNotFoundError(msg)
        with path.open("rb") as file:
            batch = pickle.load(file, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def class_index(normal_class: int | str) -> int:
    """The index of a CIFAR-10 class given by index or name.

    Raises:
        ValueError: Not one of the ten classes.
    """
    if isinstance(normal_class, int) and 0 <= normal_class < len(CLASSES):
        return normal_class
    if normal_class in CLASSES:
        return CLASSES.index(normal_class)
    msg = f"normal_class={normal_class!r}: choose an index 0-9 or one of {list(CLASSES)}."
    raise ValueError(msg)


def write_one_class(root: Path, normal_class: int | str) -> Path:
    """Lay out the one-class split of ``normal_class`` as PNG files (once) and return its folder."""
    index = class_index(normal_class)
    folder = Path(root) / "one_class" / CLASSES[index]
    done = folder / ".complete"
    if done.is_file():
        return folder
    train_images, train_labels = read_batches(Path(root) / BATCHES, TRAIN_FILES)
    test_images, test_labels = read_batches(Path(root) / BATCHES, TEST_FILES)
    splits = {
        "train/good": train_images[train_labels == index],
        "test/good": test_images[test_labels == index],
        "test/anomalous": test_images[test_labels != index],
    }
    for split, images in splits.items():
        (folder / split).mkdir(parents=True, exist_ok=True)
        for number, image in enumerate(images):
            Image.fromarray(image).save(folder / split / f"{number:05d}.png")
    done.write_text("\n".join(f"{split}: {len(images)}" for split, images in splits.items()) + "\n")
    return folder


class CIFAR10(Folder):
    """CIFAR-10 one-class: ``normal_class`` is normal (train and test), the other nine are anomalous.

    Args:
        root: Folder holding ``cifar-10-batches-py`` (torchvision's format); the one-class layout
            is written under ``root/one_class``.
        normal_class: The normal class, by index (0-9) or name (``airplane``, ..., ``truck``).
        download: Download CIFAR-10 with torchvision when the batches are missing (needs a network).
        train_batch_size: Training batch size.
        eval_batch_size: Test batch size.
        num_workers: Data loader workers.
        seed: Seed of anomalib's splits.
        **kwargs: Further ``Folder`` arguments (augmentations, ...).

    Raises:
        ValueError: ``normal_class`` is not a CIFAR-10 class.
    """

    def __init__(
        self,
        root: str | Path = "datasets/cifar10",
        normal_class: int | str = 0,
        download: bool = False,
        train_batch_size: int = 32,
        eval_batch_size: int = 32,
        num_workers: int = 8,
        seed: int | None = None,
        **kwargs: object,
    ) -> None:
        self.cifar_root = Path(root)
        self.normal_class = CLASSES[class_index(normal_class)]
        self.download = download
        super().__init__(
            name=f"cifar10_{self.normal_class}",
            root=self.cifar_root / "one_class" / self.normal_class,
            normal_dir="train/good",
            abnormal_dir="test/anomalous",
            normal_test_dir="test/good",
            train_batch_size=train_batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            val_split_mode="same_as_test",
            seed=seed,
            **kwargs,
        )
        self.category = self.normal_class  # what FastFlow's augmentation and anomalib's results use

    def prepare_data(self) -> None:
        """Download CIFAR-10 if asked and missing, then write the class's one-class layout."""
        if self.download and not (self.cifar_root / BATCHES / TEST_FILES[0]).is_file():
            from torchvision.datasets import CIFAR10 as TorchvisionCIFAR10

            TorchvisionCIFAR10(str(self.cifar_root), train=True, download=True)
        write_one_class(self.cifar_root, self.normal_class)
