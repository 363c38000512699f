"""What a benchmark measures while a model trains: time per epoch, peak memory, accuracy over epochs."""

import threading
import time
from types import TracebackType

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from ..metrics import auroc


class PeakMemory:
    """Peak memory added while the block runs: GPU memory allocated on CUDA, else process RSS.

    RSS is sampled every ``interval`` seconds; ``peak_mb`` is the highest sample minus the RSS at
    entry, so runs made one after another in one process can be compared.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        import psutil  # only the memory measurement needs it, not every command that imports the benchmark

        self.peak_mb = 0.0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._start_rss = 0
        self._peak_rss = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak_rss = max(self._peak_rss, self._process.memory_info().rss)

    def __enter__(self) -> "PeakMemory":
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            self._start_rss = torch.cuda.memory_allocated()
        else:
            self._start_rss = self._peak_rss = self._process.memory_info().rss
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if torch.cuda.is_available():
            self.peak_mb = (torch.cuda.max_memory_allocated() - self._start_rss) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self._peak_rss = max(self._peak_rss, self._process.memory_info().rss)
        self.peak_mb = (self._peak_rss - self._start_rss) / 2**20


@torch.no_grad()
def dataloader_image_auroc(module: LightningModule, dataloader: torch.utils.data.DataLoader) -> float:
    """Image AUROC of ``module`` (any anomalib model) on a labelled dataloader, in eval mode.

    The global random state is restored afterwards, so measuring does not change the training run.
    """
    was_training = module.training
    module.eval()
    scores, labels = [], []
    with torch.random.fork_rng(devices=[]):
        for batch in dataloader:
            images = module.pre_processor.transform(batch.image.to(module.device))
            scores.append(module.model(images).pred_score.flatten().cpu())
            labels.append(batch.gt_label.flatten().cpu())
    module.train(was_training)
    return auroc(torch.cat(scores), torch.cat(labels))


class EpochRecorder(Callback):
    """Seconds of each training epoch without the validation run inside it, and optionally the test
    image AUROC after each epoch; that measurement is neither timed nor seen by model or trainer.

    Args:
        evaluate_each_epoch: Score the datamodule's test split after every epoch.
    """

    def __init__(self, evaluate_each_epoch: bool = False) -> None:
        self.evaluate_each_epoch = evaluate_each_epoch
        self.epoch_seconds: list[float] = []
        self.image_aurocs: list[float] = []
        self.evaluation_seconds = 0.0
        self.validation_seconds = 0.0
        self._start = 0.0
        self._validation_start = 0.0
        self._epoch_validation = 0.0

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the epoch's clock."""
        del trainer, pl_module
        self._start = time.perf_counter()
        self._epoch_validation = 0.0

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Pause the epoch's clock while the trainer validates."""
        del trainer, pl_module
        self._validation_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Resume the epoch's clock."""
        del trainer, pl_module
        seconds = time.perf_counter() - self._validation_start
        self._epoch_validation += seconds
        self.validation_seconds += seconds

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop the clock; score the test split if asked (not timed)."""
        end = time.perf_counter()
        self.epoch_seconds.append(end - self._start - self._epoch_validation)
        if self.evaluate_each_epoch:
            self.image_aurocs.append(dataloader_image_auroc(pl_module, trainer.datamodule.test_dataloader()))
            self.evaluation_seconds += time.perf_counter() - end
