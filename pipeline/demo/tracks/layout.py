"""Which videos and tracks the frame-level demo holds, and where each trait of the real data goes.

Tracks per split come from ``demo.tracks``; videos are numbered 1..V in an order shuffled by the
seed (an id does not give the split away) and named like Aff-Wild2, ``<id>-<fps>-<W>x<H>``. The
traits of the real release (``../shared/docs/affwild2.md``), each placed where the split sizes allow
(the default demo has them all):

============================  ===================================================================
trait                         where
============================  ===================================================================
two people in one video       the first train video (and the first test video when n_test >= 4):
                              ``<video>_left`` and ``<video>_right`` tracks, one file twice as wide
one side annotated only       the train pair's ``_right`` track has no EXPR labels
a track in one task only      the next-to-last single train track is annotated for AU only
                              (n_train >= 4)
test sets differ per task     the first single test track has no AU labels (n_test >= 2)
a name whose fps lies         the first valid video: named ``FAST_FPS``, really ``video_fps``
mixed frame rates             the second valid video really runs at ``FAST_FPS``
.avi                          the last single video of train and of test (MPEG-4 Part 2, PCM)
a name without fps and size   the third single train video is ``video<id>`` (n_train >= 5)
one label line too many       each video with probability 2/3 (at least one video, never all)
============================  ===================================================================

where ``FAST_FPS = round(1.2 * video_fps)`` (30 for the default 25).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.config import DemoParams

SPLITS: tuple[str, ...] = ("train", "valid", "test")
TASK_NAMES: tuple[str, ...] = ("va", "expr", "au")
OFF_BY_ONE_PROBABILITY = 2 / 3  # 14 of 21 real tracks checked


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrackSpec:
    name: str  # the track: the video's stem, plus _left / _right for two people
    split: str
    tasks: frozenset[str]  # the tasks that annotate it
    side: str | None  # "left", "right" or None
    index: int  # seeds the track's latents and labels


@dataclasses.dataclass(frozen=True, kw_only=True)
class VideoSpec:
    stem: str
    suffix: str  # ".mp4" or ".avi"
    fps: float  # the real frame rate
    width: int
    height: int
    split: str
    tracks: tuple[TrackSpec, ...]
    off_by_one: bool  # the label files hold one line more than the video has frames
    index: int  # seeds the video's nuisance (head motion, brightness, noise)

    @property
    def filename(self) -> str:
        return f"{self.stem}{self.suffix}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Slot:
    split: str
    pair: bool
    suffix: str = ".mp4"
    named_fps: float | None = None  # None: the real rate
    fps: float | None = None  # None: video_fps
    bare_name: bool = False
    no_tasks: frozenset[tuple[str, str]] = frozenset()  # (side or "", task) pairs left unannotated


def plan_videos(params: DemoParams) -> list[VideoSpec]:
    """The demo's videos in id order, each with its tracks (see the module docstring)."""
    slots = _slots(params)
    rng = np.random.default_rng([params.seed, 0x1A7])
    ids = rng.permutation(len(slots)) + 1
    off = rng.random(len(slots)) < OFF_BY_ONE_PROBABILITY
    if len(slots) > 1 and off.all():
        off[int(np.argmax(ids))] = False
    elif not off.any():
        off[int(np.argmin(ids))] = True
    videos, track_index = [], 0
    for slot_index in np.argsort(ids):
        slot, video_id = slots[slot_index], int(ids[slot_index])
        fps = slot.fps or params.video_fps
        width = params.frame_size * (2 if slot.pair else 1)
        named = slot.named_fps or fps
        stem = f"video{video_id}" if slot.bare_name else f"{video_id}-{round(named)}-{width}x{params.frame_size}"
        tracks = []
        for side in ("left", "right") if slot.pair else (None,):
            tasks = frozenset(t for t in TASK_NAMES if (side or "", t) not in slot.no_tasks)
            name = f"{stem}_{side}" if side else stem
            tracks.append(TrackSpec(name=name, split=slot.split, tasks=tasks, side=side, index=track_index))
            track_index += 1
        videos.append(
            VideoSpec(
                stem=stem,
                suffix=slot.suffix,
                fps=fps,
                width=width,
                height=params.frame_size,
                split=slot.split,
                tracks=tuple(tracks),
                off_by_one=bool(off[slot_index]),
                index=int(video_id),
            )
        )
    return videos


def fast_fps(params: DemoParams) -> float:
    return float(round(1.2 * params.video_fps))


def _slots(params: DemoParams) -> list[_Slot]:
    counts = {"train": params.tracks.n_train, "valid": params.tracks.n_valid, "test": params.tracks.n_test}
    fast = fast_fps(params)
    slots: list[_Slot] = []
    for split, n in counts.items():
        pair = split == "train" or (split == "test" and n >= 4)
        singles = [_Slot(split=split, pair=False) for _ in range(n - 2 * pair)]
        if split == "train":
            if len(singles) >= 2:  # n_train >= 4: the pair and two singles keep VA and EXPR train
                singles[-2] = dataclasses.replace(singles[-2], no_tasks=frozenset({("", "va"), ("", "expr")}))
            if len(singles) >= 3:
                singles[2] = dataclasses.replace(singles[2], bare_name=True)
        if split == "valid":
            singles[0] = dataclasses.replace(singles[0], named_fps=fast)
            if len(singles) >= 2:
                singles[1] = dataclasses.replace(singles[1], fps=fast)
        if split == "test" and len(singles) >= 2:
            singles[0] = dataclasses.replace(singles[0], no_tasks=frozenset({("", "au")}))
        if split in ("train", "test") and singles:
            singles[-1] = dataclasses.replace(singles[-1], suffix=".avi")
        if pair:
            no_tasks = frozenset({("right", "expr")}) if split == "train" else frozenset()
            slots.append(_Slot(split=split, pair=True, no_tasks=no_tasks))
        slots.extend(singles)
    return slots
