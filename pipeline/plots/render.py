"""Any Vega-Lite spec to a PNG or SVG file, offline, through vl-convert.

``vl-convert-python`` ships Vega, Vega-Lite and Vega-Embed inside its wheel with a JavaScript
runtime (Deno) and renders in-process: no browser, no network, no Node. The first call in a process
starts the runtime; after it, the seven plots of a demo run take 0.82 s together, 0.71x the time
``dvc plots show --json`` takes to produce their specs (``benchmarks/results/plots.json``).

Every spec is compiled by Vega-Lite ``VEGA_LITE``, the newest 5.x that vl-convert bundles: DVC's
templates declare the v5 schema, and the HTML template (``pipeline.plots.template``) runs the same
version in the browser, so a PNG and ``dvc plots show`` draw one spec alike. Data should be inline
(``data.values``, as DVC gives it): ``allowed_base_urls=[]`` refuses every http(s) URL, so a spec
can never make the renderer reach the network. vl-convert's PNGs are compressed fast, not small: re-encoding them
losslessly (``compact_png``, about 60 ms) makes them 3-4x smaller (a 45 KB chart becomes 11 KB).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_path

VEGA_LITE = "5.21"
# PNG pixels per spec pixel: 1 keeps a 300x300 DVC chart near 480x340 and a few tens of KB.
DEFAULT_SCALE = 1.0


def png_bytes(spec: dict[str, Any], *, scale: float = DEFAULT_SCALE) -> bytes:
    """The PNG of ``spec`` (a Vega-Lite dict with inline data)."""
    import vl_convert  # ~85 MB native library: loaded only by commands that draw

    return compact_png(vl_convert.vegalite_to_png(spec, vl_version=VEGA_LITE, scale=scale, allowed_base_urls=[]))


def compact_png(data: bytes) -> bytes:
    """The same pixels in fewer bytes: zlib at its best setting, and no alpha channel where every
    pixel is opaque (Vega paints a white background unless the spec sets another)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    if image.mode == "RGBA" and image.getextrema()[3] == (255, 255):
        image = image.convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def svg_text(spec: dict[str, Any]) -> str:
    """The SVG of ``spec``: text stays text, for pages that scale the picture."""
    import vl_convert

    return vl_convert.vegalite_to_svg(spec, vl_version=VEGA_LITE, allowed_base_urls=[])


def render_png(spec: dict[str, Any], path: str | os.PathLike[str], *, scale: float = DEFAULT_SCALE) -> Path:
    """Write ``spec`` as a PNG at ``path``, atomically (a reader never sees half a picture)."""
    data = png_bytes(spec, scale=scale)
    with atomic_path(path, ".png") as tmp:
        tmp.write_bytes(data)
    return Path(path)


def render_svg(spec: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``spec`` as an SVG at ``path``, atomically."""
    text = svg_text(spec)
    with atomic_path(path, ".svg") as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
