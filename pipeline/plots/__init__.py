"""Plots a user can see without internet: Vega-Lite specs drawn offline by vl-convert.

- ``render``: any Vega-Lite spec (a dict, data inline) to PNG or SVG, :func:`render_png` /
  :func:`render_svg`, written atomically; no browser and no network.
- ``specs``: builders for emi's own pictures (the noise-ceiling ticks on DVC's per-emotion bars,
  one input's predicted intensities for ``pipeline.predict --plots``).
- ``template``: the HTML template with vega, vega-lite and vega-embed inline that ``.dvc/config``
  names, so ``dvc plots show`` and ``dvc plots diff`` draw offline.
- ``export``: the pictures of a finished run, from the specs ``dvc plots show --json`` returns.

``python -m pipeline.plots template|export`` (``pipeline.plots.cli``); docs/plots.md for users.
"""

from pipeline.plots.render import render_png, render_svg

__all__ = ["render_png", "render_svg"]
