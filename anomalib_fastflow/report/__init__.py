"""One offline HTML page per test run: the run, its metrics, score histogram, curves and a gallery.

``collector.ReportCollector`` gathers each test or predicted image's score, decision and
anomalib's overlay while the trainer runs; ``page.write_page`` turns them into ``index.html``
with its images in ``images/`` beside it (no scripts, no fonts, nothing fetched), in a folder that
``staging.staged_folder`` moves into place whole. ``checkpoint_report.write_checkpoint_report``
is the report of a checkpoint (the CLI's ``report``).
"""

from .collector import ReportCollector, ScoredImage
from .page import write_page
from .run import describe_run, thresholds
from .staging import staged_folder

__all__ = [
    "ReportCollector",
    "ScoredImage",
    "describe_run",
    "staged_folder",
    "thresholds",
    "write_page",
]
