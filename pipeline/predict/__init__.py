"""Prediction on new files, ``python -m pipeline.predict``: the command (``cli``), what counts as
an input (``inputs``) and decode -> ASR -> features -> model for one file at a time (``predictor``)."""
