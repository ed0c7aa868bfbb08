"""Offline plots, looked at as a user would: ``dvc plots show`` in headless Chromium, network blocked.

On the run in the current folder (``make demo``'s, or the CI baseline committed under eval/):

1. ``dvc plots show`` twice, into temporary folders: through the project's template
   (``python -m pipeline.plots template``) and through DVC's own page (``dvc_render.html.PAGE_HTML``,
   which loads vega from a CDN): the floor the template is compared with.
2. Chromium from Debian (``--install-chromium`` installs it with apt-get when it is missing; never
   needed by ``make test``) opens each page with every host name unresolvable and a dead proxy, so
   nothing can come from the network, and lets scripts run for 10 s of virtual time; then a
   screenshot (its size, pixel spread and the share of non-background pixels: ``fixtures.images``)
   and the DOM (charts drawn: vega-embed's ``<svg class="marks">`` elements, against the plots).
3. The PNG export (``pipeline.plots.export``) timed against its floor, ``dvc plots show --json``
   (DVC reading the run and filling its templates) on the same run.

Prints a summary and writes ``benchmarks/results/plots.json``; the screenshots stay in ``--shots``.

    .venv/bin/python -m benchmarks.bench_plots [--install-chromium] [--shots /tmp/emi-plots-shots]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dvc_render.html import PAGE_HTML

from fixtures.images import image_stats
from pipeline.atomic import write_json
from pipeline.experiments.dvc_commands import run_dvc
from pipeline.plots.export import dvc_plot_specs, export_plots
from pipeline.plots.template import external_resources, library_versions, write_template

REPO = Path(__file__).resolve().parents[1]
# Every name resolves to nothing and any proxied request goes to a closed local port: offline.
OFFLINE_FLAGS = ["--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", "--proxy-server=http://127.0.0.1:9"]
BROWSER_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=10000"]


def chromium(install: bool) -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found or not install:
        if not found:
            sys.exit("chromium is not installed: run with --install-chromium (apt-get install chromium)")
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"]
    subprocess.run([*sudo, *install], check=True, env=env)
    return shutil.which("chromium") or sys.exit("apt-get installed chromium but it is not on PATH")


def _timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def look(browser: str, page: Path, shot: Path) -> dict:
    """Screenshot and DOM of ``page`` in offline headless Chromium."""
    url = page.resolve().as_uri()
    base = [browser, *BROWSER_FLAGS, *OFFLINE_FLAGS]
    subprocess.run([*base, "--window-size=1100,1500", f"--screenshot={shot}", url], capture_output=True, timeout=180)
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
    stats = image_stats(shot).as_dict() if shot.is_file() else {}
    return {"screenshot": str(shot), **stats, "charts_drawn": dom.count('class="marks"')}


def show_page(out_dir: Path, template: Path) -> dict:
    _, seconds = _timed(run_dvc, REPO, "plots", "show", "-o", str(out_dir), "--html-template", str(template))
    html = (out_dir / "index.html").read_text(encoding="utf-8")
    return {"dvc_plots_show_s": round(seconds, 2), "html_bytes": len(html.encode()), "remote": external_resources(html)}


def bench_export(work: Path) -> dict:
    answer, floor = _timed(dvc_plot_specs, REPO)
    _timed(export_plots, answer, work / "warm")  # the first call starts vl-convert's runtime
    results, seconds = _timed(export_plots, answer, work / "figures")
    written = [r.path for r in results if r.path is not None]
    return {
        "plots": len(results),
        "written": len(written),
        "bytes": sum(p.stat().st_size for p in written),
        "dvc_plots_show_json_s": round(floor, 3),
        "export_s": round(seconds, 3),
        "export_per_plot_s": round(seconds / max(len(results), 1), 3),
        "ratio_export_to_floor": round(seconds / floor, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install-chromium", action="store_true", help="apt-get install chromium when missing")
    parser.add_argument("--shots", default=str(Path(tempfile.gettempdir()) / "emi-plots-shots"))
    args = parser.parse_args()
    browser = chromium(args.install_chromium)
    shots = Path(args.shots)
    shots.mkdir(parents=True, exist_ok=True)
    version = subprocess.run([browser, "--version"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="emi-bench-plots-") as tmp:
        work = Path(tmp)
        (work / "dvc-default.html").write_text(PAGE_HTML, encoding="utf-8")
        _, template_s = _timed(write_template, work / "offline.html")
        pages = {}
        for name, template in (("offline_template", work / "offline.html"), ("dvc_default", work / "dvc-default.html")):
            page = show_page(work / name, template)
            pages[name] = {**page, **look(browser, work / name / "index.html", shots / f"{name}.png")}
        n_plots = len(json.loads(run_dvc(REPO, "plots", "show", "--json")).get("data", {}))
        export = bench_export(work)
    results = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "chromium": version,
        "libraries": library_versions(),
        "template_s": round(template_s, 2),
        "plots_in_run": n_plots,
        "pages": pages,
        "export": export,
    }
    write_json(results, REPO / "benchmarks" / "results" / "plots.json")
    for name, page in pages.items():
        print(
            f"{name:17s} charts drawn {page['charts_drawn']}/{n_plots}, non-background pixels "
            f"{page.get('ink_fraction', 0):.1%}, remote scripts {len(page['remote'])}, "
            f"{page['html_bytes'] / 1e3:.0f} KB"
        )
    print(
        f"export: {export['written']}/{export['plots']} PNGs in {export['export_s']:.2f} s "
        f"({export['ratio_export_to_floor']}x dvc plots show --json, {export['dvc_plots_show_json_s']:.2f} s)"
    )


if __name__ == "__main__":
    main()
