"""One offline HTML page per test run: the run, its metrics, score histogram, curves and a gallery.

``collector.ReportCollector`` gathers each test or predicted image's score, decision and
anomalib's overlay while the trainer runs; ``page.write_page`` turns them into ``index.html``
with its images in ``images/`` beside it (no scripts, no fonts, nothing fetched).
"""

from .collector import ReportCollector, ScoredImage
from .page import write_page
from .run import checkpoint_progress, describe_run, thresholds

__all__ = [
    "ReportCollector",
    "ScoredImage",
    "checkpoint_progress",
    "describe_run",
    "thresholds",
    "write_page",
]
