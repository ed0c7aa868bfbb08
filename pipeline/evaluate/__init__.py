"""Stage evaluate's library: scoring and robustness (``evaluation``), the challenge metric
(``metrics``) and the submission file (``submission``)."""
