"""FastFlow's training machinery, reaching the trainer and datamodule through callbacks with one job each.

``FastFlow.configure_callbacks`` returns them:

- ``self_validation``: ``SelfValidation`` holds normal images out of the fit and fits the
  post-processor's thresholds on them and their synthetic defects (``synthetic_defects``);
- ``budget``: ``DefaultBudget`` sets the default budget when none was given and validates once;
- ``view_feature_cache``: ``ViewFeatureCache`` gives the model the fit's ``view_features``: the
  paper's augmentation as fixed views per image (``views``), each view's backbone features computed
  once (``feature_cache``), a training set that leaves the images of cached views unread
  (``cached_views``);
- ``samplers``: ``SeededOrder``, training orders that depend on the seed and the epoch only;
- ``guards``: ``NonFiniteGuard`` stops before a non-finite loss or gradient reaches the weights.

``schedule`` is the one-cycle learning rate the model's optimizer follows.
"""
