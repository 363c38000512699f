"""Benchmarks: ours against anomalib's Fastflow, PatchCore and CFlow on the same data and backbone.

- ``baselines``: anomalib's models built on our backbones, weights and pre-processing;
- ``training``, ``measure``: train and test a model, with time per epoch, peak memory and AUROC;
- ``inference``: backbone, model and additional latency and parameters (the paper's Table 1);
- ``versus_anomalib``, ``epoch_time``: the training comparison with anomalib's Fastflow;
- ``grid``, ``report``, ``datasets``: the benchmark grid, its tables and plots, its data.
"""
