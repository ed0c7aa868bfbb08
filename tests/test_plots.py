"""pipeline.plots on small generated input: pictures are drawn (not blank, the right marks in the
right colours), the offline template loads nothing from the network once DVC fills it, and the
export turns DVC's answer into one file (or one named reason) per plot."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from dvc_render import VegaRenderer, render_html
from dvc_render.html import PAGE_HTML

from fixtures.images import image_stats
from pipeline.emotions import EMOTIONS
from pipeline.plots import render_png, render_svg
from pipeline.plots.export import demo_ceiling, export_plots, file_stem
from pipeline.plots.render import png_bytes
from pipeline.plots.specs import ABSENT, PRESENT, prediction_spec, with_reference_ticks
from pipeline.plots.template import TEMPLATE_NAME, TEMPLATE_PATH, external_resources, offline_template

from .conftest import REPO

PEARSON = dict(zip(EMOTIONS, (0.71, 0.70, 0.24, 0.82, 0.13, 0.72), strict=True))
CEILING = dict(zip(EMOTIONS, (0.91, 0.89, 0.88, 0.91, 0.88, 0.89), strict=True))


def dvc_bar_spec(values: dict[str, float], revs: tuple[str, ...] = ("workspace",)) -> dict:
    """The spec DVC gives ``dvc plots show`` for eval/plots/per_emotion.csv: its own renderer and
    bar_horizontal template on rows as DVC reads them from the CSV (strings)."""
    rows = [{"emotion": e, "pearson": str(v), "rev": rev} for rev in revs for e, v in values.items()]
    renderer = VegaRenderer(rows, "eval/plots/per_emotion.csv", template="bar_horizontal", x="pearson", y="emotion")
    return renderer.get_filled_template()


def colour_pixels(png: bytes, hex_colour: str) -> int:
    from io import BytesIO

    from PIL import Image

    rgb = np.asarray(Image.open(BytesIO(png)).convert("RGB"), dtype=np.int16)
    target = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb - target).max(axis=2) <= 3).sum())


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / TEMPLATE_NAME
    path.write_text(offline_template(), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------ rendering
def test_render_png_draws_the_chart_atomically(tmp_path: Path) -> None:
    out = render_png(dvc_bar_spec(PEARSON), tmp_path / "bars.png")
    stats = image_stats(out)
    assert stats.width > 300 and stats.height > 250
    assert stats.std > 20 and stats.ink_fraction > 0.1  # bars, axes, labels: far from one flat colour
    assert colour_pixels(out.read_bytes(), "#945dd6") > 2000  # DVC's bar colour, six bars of it
    assert [p.name for p in tmp_path.iterdir()] == ["bars.png"]  # no temporary file left behind
    empty = image_stats(png_bytes({"width": 200, "height": 100, "mark": "point", "data": {"values": []}}))
    assert empty.ink_fraction < stats.ink_fraction / 10  # the measure tells an empty chart apart


def test_svg_keeps_text_and_remote_data_is_refused(tmp_path: Path) -> None:
    svg = render_svg(dvc_bar_spec(PEARSON), tmp_path / "bars.svg").read_text()
    assert all(f">{e}</text>" in svg for e in EMOTIONS)
    remote = {"data": {"url": "http://127.0.0.1:9/x.csv"}, "mark": "bar"}  # loopback: never leaves the machine
    with pytest.raises(ValueError, match="not allowed"):
        png_bytes(remote)


def test_reference_ticks_sit_at_the_ceiling_on_the_bars_scale(tmp_path: Path) -> None:
    spec = dvc_bar_spec(PEARSON)
    before = json.dumps(spec)
    marked = with_reference_ticks(spec, CEILING, category="emotion", label="noise ceiling (demo)")
    assert json.dumps(spec) == before  # the input is not modified
    svg = render_svg(marked, tmp_path / "ceiling.svg").read_text()
    ticks = re.findall(
        r'aria-label="pearson: ([\d.]+); emotion: ([^"]+)"[^>]*aria-roledescription="tick" d="M([\d.]+)', svg
    )
    assert {e: float(v) for v, e, _ in ticks} == CEILING
    # One x scale for bars and ticks: tick x positions are linear in the ceiling values.
    xs = np.array([float(x) for *_, x in ticks])
    values = np.array([float(v) for v, *_ in ticks])
    slope, intercept = np.polyfit(values, xs, 1)
    assert np.allclose(xs, slope * values + intercept, atol=0.6) and slope > 100
    assert "noise ceiling (demo)" in svg
    with pytest.raises(ValueError, match="one-view"):
        with_reference_ticks(marked, CEILING, category="emotion", label="again")


def test_prediction_picture_colours_and_lines() -> None:
    ok = prediction_spec(
        clip_id="clip", values=PEARSON, present={"visual": True, "audio": False, "text": True}, status="ok"
    )
    assert ok["title"]["subtitle"][:2] == ["modalities present: visual, text; absent: audio", "status: ok"]
    corrupt = prediction_spec(
        clip_id="broken",
        values=PEARSON,
        present=dict.fromkeys(("visual", "audio", "text"), False),
        status="corrupt",
        message="cannot open: InvalidDataError " + "x" * 400,
    )
    lines = corrupt["title"]["subtitle"]
    assert "the bars are the model's prior" in lines[2] and lines[3].startswith("message: cannot open")
    assert len(lines) <= 6 and lines[-1].endswith("...")  # a long message is cut, not drawn off the picture
    ok_png, corrupt_png = png_bytes(ok), png_bytes(corrupt)
    # Grey antialiasing of text and grid lines matches ABSENT on a few hundred pixels; bars are thousands.
    assert colour_pixels(ok_png, PRESENT) > 1500 > 5 * colour_pixels(ok_png, ABSENT)
    assert colour_pixels(corrupt_png, ABSENT) > 1500 and colour_pixels(corrupt_png, PRESENT) == 0
    assert image_stats(corrupt_png).ink_fraction > 0.1


# ------------------------------------------------------------------------------ HTML template
def test_external_resources_finds_what_a_browser_would_fetch() -> None:
    remote = [
        '<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>',
        "<script type='text/javascript' src='http://x.org/a.js'></script>",
        "<script src=//cdn.example/a.js></script>",
        '<link rel="stylesheet" href="https://x.org/a.css">',
        "<style>@import url('https://x.org/b.css');</style>",
    ]
    for html in remote:
        assert external_resources(html), html
    local = '<script>var s = "https://vega.github.io/schema/vega-lite/v5.json";</script><script src="a.js"></script>'
    assert external_resources(local) == []
    assert len(external_resources(PAGE_HTML.replace("{scripts}", VegaRenderer.SCRIPTS))) == 3  # DVC's own page


def test_template_is_offline_once_dvc_fills_it(template: Path, tmp_path: Path) -> None:
    text = template.read_text(encoding="utf-8")
    assert "{plot_divs}" in text and "{scripts}" not in text and external_resources(text) == []
    assert "window.vegaEmbed=" in text and len(text) > 500_000  # the libraries themselves, inline
    renderers = [VegaRenderer([{"step": str(i), "loss": str(1 / (i + 1)), "rev": "workspace"} for i in range(5)],
                               "loss.tsv", x="step", y="loss")]  # fmt: skip
    page = Path(render_html(renderers, tmp_path / "offline" / "index.html", html_template=str(template))).read_text()
    assert external_resources(page) == [] and "vegaEmbed('#loss_tsv', spec)" in page
    assert page.index("window.vegaEmbed=") < page.index("vegaEmbed('#loss_tsv'")  # defined before it is called
    default = Path(render_html(renderers, tmp_path / "cdn" / "index.html")).read_text()
    assert len(external_resources(default)) == 3  # what the template replaces


def test_dvc_config_names_the_generated_template_and_git_ignores_it() -> None:
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        named = repo.config["plots"]["html_template"]
        assert (Path(repo.dvc_dir) / named).resolve() == (REPO / TEMPLATE_PATH).resolve()
    ignored = subprocess.run(["git", "check-ignore", "-q", str(TEMPLATE_PATH)], cwd=REPO)
    assert ignored.returncode == 0, f"{TEMPLATE_PATH} is generated: git must ignore it"


# ------------------------------------------------------------------------------ export
def test_export_writes_one_file_or_one_reason_per_plot(tmp_path: Path) -> None:
    bars = dvc_bar_spec(PEARSON, revs=("main", "exp-1"))
    answer = {
        "data": {
            "eval/plots/per_emotion.csv": [{"type": "vega", "revisions": ["main", "exp-1"], "content": bars}],
            "a/loss.tsv": [{"type": "vega", "revisions": ["workspace"], "content": bars}],
            "b/loss.tsv": [{"type": "vega", "revisions": ["workspace"], "content": {"mark": "nonsense"}}],
            "Training curves": [{"type": "vega", "revisions": ["workspace"], "content": bars}],
            "eval/confusion.png": [{"type": "image", "revisions": ["workspace"], "url": "eval/confusion.png"}],
        },
        "errors": [{"name": "eval/plots/robustness.csv", "rev": "workspace", "msg": "file not found"}],
    }
    results = export_plots(answer, tmp_path, ceiling=CEILING)
    assert len(results) == 6
    written = {r.plot_id: r for r in results if r.path is not None}
    assert {p: r.path.name for p, r in written.items()} == {
        "eval/plots/per_emotion.csv": "per_emotion.png",
        "a/loss.tsv": "loss.png",
        "Training curves": "training_curves.png",
    }
    assert written["eval/plots/per_emotion.csv"].note == "with noise ceiling" and not written["a/loss.tsv"].note
    skipped = {r.plot_id: r.note for r in results if r.path is None}
    assert skipped["b/loss.tsv"].startswith("not drawn:")
    assert "image plot" in skipped["eval/confusion.png"] and "file not found" in skipped["eval/plots/robustness.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png", "per_emotion.png", "training_curves.png"]
    assert all(image_stats(r.path).ink_fraction > 0.1 for r in written.values())
    assert file_stem("dvc.yaml::eval/plots/per_emotion.csv") == "per_emotion"


def test_demo_ceiling_only_for_the_demo(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    root.mkdir()
    (root / "ceiling.json").write_text(json.dumps({"fused": {"mean": 0.89, "per_emotion": CEILING}}))

    def params(source: str) -> Path:
        path = tmp_path / f"{source}.yaml"
        path.write_text((REPO / "params.yaml").read_text().replace("root: data/demo", f"root: {root}")
                        .replace("source: demo", f"source: {source}"))  # fmt: skip
        return path

    assert demo_ceiling(params("demo")) == CEILING
    assert demo_ceiling(params("hume")) is None  # a demo ceiling never lands on other data
    (root / "ceiling.json").write_text("{not json")
    assert demo_ceiling(params("demo")) is None
