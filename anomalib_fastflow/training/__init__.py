"""FastFlow's training machinery, reaching the trainer and datamodule through one callback.

- ``callback``: ``FastFlowTraining``, the callback ``FastFlow.configure_callbacks`` returns;
- ``views``: the paper's augmentation as fixed views per image, safe sets per category;
- ``view_features``, ``feature_cache``, ``cached_views``: each view's backbone features computed
  once, and a training set that leaves the images of cached views unread;
- ``schedule``: the default budget and the one-cycle learning rate;
- ``samplers``: training orders that depend on the seed and the epoch only;
- ``guards``: stop before a non-finite loss or gradient reaches the weights.
"""
