"""The whole frame-level demo: plan the tracks, render the videos, annotate, write the release, the
latents and the ceilings, swap in."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import write_json, write_parquet
from pipeline.config import DemoParams
from pipeline.demo.generate import swap_in
from pipeline.demo.tracks.ceiling import LEVELS, MODEL, MODEL_FPS, Record, ceilings, model_records
from pipeline.demo.tracks.labels import annotate, invalid_stretch
from pipeline.demo.tracks.layout import SPLITS, TASK_NAMES, TrackSpec, VideoSpec, plan_videos
from pipeline.demo.tracks.model import (
    LENGTH_SPREAD,
    PITCH_SLOPE,
    SENTENCE_TEXTS,
    TrackPlan,
    configurations,
    crossfade,
    draw_plan,
    silence_overlaps,
    speaking,
    timeline,
    truth,
)
from pipeline.demo.tracks.release import VIDEOS, write_labels, write_sample, write_test_list
from pipeline.demo.tracks.render import Person, Sentence, VideoJob, render_video
from pipeline.demo.tracks.table import latents_table
from pipeline.runtime.pools import spawn_pool
from pipeline.tasks import get_task

VOICES = {None: "en-us", "left": "en-us", "right": "en-us+f2"}  # the second person speaks as a woman


def plan_people(videos: list[VideoSpec], params: DemoParams) -> dict[str, TrackPlan]:
    """{track: plan}, each from its own seed; two people in one video take turns speaking and their
    plans are stretched to the same length (the longer one's)."""
    plans: dict[str, TrackPlan] = {}
    for video in videos:
        drawn = []
        for track in video.tracks:
            rng = np.random.default_rng([params.seed, 0x7AC5, track.index])
            drawn.append(draw_plan(rng, params.tracks.seconds * float(rng.uniform(*LENGTH_SPREAD))))
        if len(drawn) == 2:
            drawn[1] = silence_overlaps(drawn[1], drawn[0])
            longest = max(p.duration for p in drawn)
            drawn = [dataclasses.replace(p, duration=longest) for p in drawn]
        plans.update({t.name: p for t, p in zip(video.tracks, drawn, strict=True)})
    if not any(p.absent.any() for p in plans.values()):
        # Every demo shows a face leaving the frame: the absent flag is drawn apart from the latents,
        # so setting it changes no label, only what the face shows.
        name, plan = next((n, p) for n, p in plans.items() if len(p.starts) > 1)
        plans[name] = dataclasses.replace(plan, absent=np.arange(len(plan.starts)) == 1)
    return plans


def frame_counts(video: VideoSpec, plan: TrackPlan) -> tuple[int, int]:
    """(frames in the video, label lines): the video ends with its last whole frame."""
    n = int(np.floor(plan.duration * video.fps + 1e-9))
    return n, n + int(video.off_by_one)


def video_job(root: Path, video: VideoSpec, plans: dict[str, TrackPlan], params: DemoParams) -> VideoJob:
    configs = configurations()
    persons = []
    for track in video.tracks:
        plan = plans[track.name]
        n, _ = frame_counts(video, plan)
        line = timeline(plan, np.arange(n) / video.fps)
        face = crossfade(line, configs.face[plan.config], np.zeros((len(plan.config), 3)))
        arousal = configs.target[plan.config, 1]
        speed, amplitude = configs.speed[plan.config], configs.amplitude[plan.config]
        sentences = tuple(
            Sentence(
                text=SENTENCE_TEXTS[plan.sentence[j]],
                onset=float(plan.onset[j]),
                pitch=int(np.clip(plan.pitch_base + round(PITCH_SLOPE * arousal[j]), 0, 99)),
                speed=int(speed[j]),
                amplitude=int(amplitude[j]),
            )
            for j in np.flatnonzero(plan.speaks)
        )
        persons.append(
            Person(face=face, pan=line.pan, sentences=sentences, voice=VOICES[track.side], mirror=track.side == "right")
        )
    seed = int(np.random.SeedSequence([params.seed, 0x7AC6, video.index]).generate_state(1)[0])
    path = root / VIDEOS / video.filename
    return VideoJob(path=path, fps=video.fps, size=params.frame_size, persons=tuple(persons), seed=seed)


def label_tracks(
    videos: list[VideoSpec], plans: dict[str, TrackPlan], rendered: list[dict[str, Any]], params: DemoParams
) -> dict[str, Record]:
    """{track: Record} with the annotators' labels; AU25 follows the speech really rendered."""
    records: dict[str, Record] = {}
    invalid: dict[tuple[str, str], np.ndarray] = {}
    for video, result in zip(videos, rendered, strict=True):
        for side, track in enumerate(video.tracks):
            plan = plans[track.name]
            _, lines = frame_counts(video, plan)
            times = np.arange(lines) / video.fps
            line = timeline(plan, times)
            talking = speaking(times, result["spans"][side])
            rng = np.random.default_rng([params.seed, 0x7AC7, track.index])
            va, expr, au = annotate(
                truth(plan, line, talking),
                line.pan,
                rng,
                va_noise=params.tracks.va_noise,
                label_flip=params.tracks.label_flip,
                fps=video.fps,
            )
            records[track.name] = Record(
                plan=plan, line=line, talking=talking, va=va, expr=expr, au=au, group=track.split, tasks=track.tasks
            )
            invalid.update({(track.name, t): _invalid(params, track, t, lines, video.fps) for t in track.tasks})
    _force_invalid(invalid, videos, params)
    for (name, task), mask in invalid.items():
        getattr(records[name], task)[mask] = np.nan
    return records


def _invalid(params: DemoParams, track: TrackSpec, task: str, n: int, fps: float, force: bool = False) -> np.ndarray:
    rng = np.random.default_rng([params.seed, 0x7AC8, track.index, TASK_NAMES.index(task)])
    return invalid_stretch(rng, n, fps, force=force)


def _force_invalid(invalid: dict[tuple[str, str], np.ndarray], videos: list[VideoSpec], params: DemoParams) -> None:
    """Every task gets at least one invalid stretch: if none was drawn, its first train track's."""
    for task in TASK_NAMES:
        if any(mask.any() for (_, t), mask in invalid.items() if t == task):
            continue
        for video in videos:
            track = next((t for t in video.tracks if task in t.tasks and t.split == "train"), None)
            if track is not None:
                n = len(invalid[(track.name, task)])
                invalid[(track.name, task)] = _invalid(params, track, task, n, video.fps, force=True)
                break


def write_release(root: Path, videos: list[VideoSpec], records: dict[str, Record]) -> None:
    """Label files by task and split, the test lists and the sample submissions (id order)."""
    tracks = [t for v in videos for t in v.tracks]
    for name in TASK_NAMES:
        task = get_task(name)
        for split in SPLITS:
            labels = {t.name: getattr(records[t.name], name) for t in tracks if t.split == split and name in t.tasks}
            write_labels(root, task, split, labels)
        test = [t.name for t in tracks if t.split == "test" and name in t.tasks]
        write_test_list(root, task, test)
        write_sample(root, task, {t: len(records[t].talking) for t in test})


def generate_tracks(
    out_dir: str | Path, params: DemoParams, *, workers: int = 2, ceiling_draws: int = 2000
) -> dict[str, Any]:
    """Write the frame-level demo, an Aff-Wild2 release (layout in ``pipeline/demo/tracks``), to
    ``out_dir``, replaced as a whole (built beside it, then swapped in). Videos are rendered by
    ``workers`` processes, each a pure function of its job, so the files do not depend on
    ``workers``. ``ceiling_draws``: tracks drawn for the model's ceilings. Returns the ceiling dict
    also written to ceiling.json."""
    out_dir = Path(out_dir)
    videos = plan_videos(params)
    plans = plan_people(videos, params)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    build.chmod(0o755)  # mkdtemp makes it private; the release is an ordinary folder
    try:
        jobs = [video_job(build, video, plans, params) for video in videos]
        (build / VIDEOS).mkdir()
        if workers > 1:
            with spawn_pool(workers) as pool:
                rendered = list(pool.map(render_video, jobs))
        else:
            rendered = [render_video(job) for job in jobs]
        records = label_tracks(videos, plans, rendered, params)
        write_release(build, videos, records)
        write_parquet(latents_table(videos, records, rendered), build / "latents.parquet")
        ceiling = tracks_ceiling(records, params, ceiling_draws)
        write_json(ceiling, build / "ceiling.json")
        swap_in(build, out_dir)
    finally:
        if build.exists():
            shutil.rmtree(build)
    return ceiling


def tracks_ceiling(records: dict[str, Record], params: DemoParams, draws: int) -> dict[str, Any]:
    """ceiling.json: per task, the model's ceilings (noise-free latents, each modality subset, fused =
    all three) from ``draws`` Monte Carlo tracks, and the same on the generated tracks per split."""
    tracks = params.tracks
    model = model_records(
        seed=params.seed,
        n_tracks=draws,
        seconds=tracks.seconds,
        va_noise=tracks.va_noise,
        label_flip=tracks.label_flip,
    )
    scores = ceilings(model + list(records.values()), label_flip=tracks.label_flip)
    fused = LEVELS[-1]
    out: dict[str, Any] = {
        "model": {
            "tracks": draws,
            "fps": MODEL_FPS,
            "seconds": tracks.seconds,
            "va_noise": tracks.va_noise,
            "label_flip": tracks.label_flip,
        }
    }
    for task, groups in scores.items():
        levels = groups[MODEL]
        out[task] = {
            "latents": levels[LEVELS[0]],
            "fused": levels[fused],
            "modalities": {level: levels[level] for level in LEVELS[1:]},
            "generated": {split: groups[split] for split in SPLITS if split in groups},
        }
    return out
