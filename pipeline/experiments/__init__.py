"""Experiments around the pipeline: the CI metrics gate (``gate``), the papers' ablation grids
(``grid``) and the ``dvc``/``git`` calls they share (``dvc_commands``)."""
