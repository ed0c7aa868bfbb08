"""Frame-level tracks: alignment of modalities and labels to the decoded frames, windows, batches,
inference back to every annotated frame, and the four frame-level models on generated tracks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.common import ModalityInput
from models.frame_common import FrameInputs, FrameModelConfig
from pipeline.config import Params, parse_params
from pipeline.features import ClipFeatures
from pipeline.features.shards import ModalityInfo
from pipeline.tasks import AU, EXPR, VA
from pipeline.timeline import Timeline
from pipeline.train.frame_data import align, frame_times, step_targets
from pipeline.train.frame_inference import frame_scores, smooth, to_frames
from pipeline.train.frame_loop import train_frames
from pipeline.train.frames import FrameTable, FrameTrack, window_starts
from pipeline.train.models import MODELS, build_model, model_config


@pytest.mark.parametrize(
    ("length", "window", "stride"), [(100, 16, 8), (16, 16, 8), (5, 16, 8), (37, 10, 10), (0, 4, 2)]
)
def test_windows_cover_every_step_and_the_last_ends_at_the_end(length: int, window: int, stride: int) -> None:
    starts = window_starts(length, window, stride)
    covered = np.zeros(length, int)
    for s in starts:
        covered[s : s + window] += 1
    assert (covered > 0).all() and (not starts or min(length, starts[-1] + window) == length)
    assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def _record(times, values, valid=None) -> ClipFeatures:
    values = np.asarray(values, np.float32)
    valid = np.ones(len(times), bool) if valid is None else np.asarray(valid)
    return ClipFeatures("c", values, np.asarray(times, np.float32), valid, available=True)


def test_each_modality_lands_on_the_step_it_covers() -> None:
    steps = np.arange(10) / 5.0
    visual = _record(steps, np.arange(10)[:, None], valid=[True] * 9 + [False])
    values, valid, why = align(visual, steps, context=False)
    assert why == "" and values[:, 0].tolist() == list(range(10)) and valid.tolist() == [True] * 9 + [False]
    audio = _record((np.arange(8) + 0.5) / 5.0, 100 + np.arange(8)[:, None])  # bins cover [b, b+1) / 5: 8 of 10
    values, valid, _ = align(audio, steps, context=False)
    assert values[:8, 0].tolist() == list(range(100, 108)) and valid.tolist() == [True] * 8 + [False] * 2
    text = _record([0.0], [[7.0, 8.0]])
    values, valid, _ = align(text, steps, context=True)
    assert values.shape == (1, 2) and valid.tolist() == [True]
    missing = ClipFeatures.missing("c", 3, "no_face")
    assert align(missing, steps, context=False) == (None, None, "no_face")
    assert align(None, steps, context=False)[2] == "no record in the feature shards"


def test_labels_follow_each_sample_to_its_source_frame() -> None:
    # 12.5 fps video; samples at 5 fps show frames 0, 2 (0.16 s <= 0.2), 5, 7.
    pts = np.arange(9) * 0.08
    timeline = Timeline("c", 5.0, pts, np.array([0, 2, 5, 7]))
    labels = np.arange(10, dtype=np.float32)[:, None]  # one line more than the decoded frames
    np.testing.assert_array_equal(step_targets(labels, timeline, 1)[:, 0], [0, 2, 5, 7])
    short = labels[:6]
    assert np.isnan(step_targets(short, timeline, 1)[3, 0])  # frame 7 has no label line
    times = frame_times(timeline, 10)
    np.testing.assert_allclose(times, np.arange(10) * 0.08)  # the extra line continues at the frame gap
    np.testing.assert_allclose(frame_times(None, 3), [0.0, 0.2, 0.4])


def test_scores_interpolated_to_every_frame_ends_held_and_smoothed() -> None:
    steps = np.arange(5) / 5.0
    scores = np.stack([steps * 10, -steps], axis=1)
    frames = np.array([-0.1, 0.0, 0.1, 0.5, 0.8, 1.5])
    out = to_frames(scores, steps, frames, smoothing=0)
    np.testing.assert_allclose(out[:, 0], [0.0, 0.0, 1.0, 5.0, 8.0, 8.0])
    np.testing.assert_allclose(smooth(np.arange(5.0)[:, None], 1)[:, 0], [0.5, 1, 2, 3, 3.5])


def _track(rng, split: str, n: int, *, task, face_every: int = 1) -> FrameTrack:
    """A generated track at 5 fps: valence shows in the face, arousal only in the voice."""
    t = np.arange(n) / 5.0
    valence, arousal = np.sin(t / 3 + rng.uniform(0, 6)), np.cos(t / 2 + rng.uniform(0, 6))
    face = (np.arange(n) % face_every) == 0
    visual = np.stack([valence, rng.normal(size=n), rng.normal(size=n)], 1) + 0.05 * rng.normal(size=(n, 3))
    audio = np.stack([arousal, rng.normal(size=n)], 1) + 0.05 * rng.normal(size=(n, 2))
    if task is VA:
        labels = np.stack([valence, arousal], 1).astype(np.float32)
    elif task is EXPR:
        labels = ((valence > 0) * 2 + (arousal > 0)).astype(np.float32)[:, None]  # 4 of the 8 classes
    else:  # half the AUs follow the face, half the voice
        labels = np.stack(
            [valence > s for s in np.linspace(-0.5, 0.5, 6)] + [arousal > s for s in np.linspace(-0.5, 0.5, 6)], 1
        )
        labels = labels.astype(np.float32)
    return FrameTrack(
        clip_id=f"{split}{rng.integers(1 << 30)}", split=split, times=t,
        values={"visual": visual.astype(np.float16), "audio": audio.astype(np.float16)},
        valid={"visual": face, "audio": np.ones(n, bool)},
        targets=labels, frame_times=t.copy(), labels=labels,
    )  # fmt: skip


def _table(task, *, face_every: int, seed: int = 0) -> FrameTable:
    rng = np.random.default_rng(seed)
    tracks = [_track(rng, s, 100, task=task, face_every=face_every) for s in ["train"] * 4 + ["valid"] * 2]
    info = {"visual": ModalityInfo(3, "v"), "audio": ModalityInfo(2, "a")}
    return FrameTable(tracks, info)


def _params(task: str, model: str, **train) -> Params:
    raw = {"task": task, "fusion": {"model": model, "modalities": ["visual", "audio"], "d_model": 16, "n_heads": 2}}
    raw["fusion"]["temporal"] = {"layers": 1}
    raw["train"] = {"max_epochs": 8, "patience": 8, "lr": 5e-3, "batch_size": 8, **train}
    raw["frames"] = {"window": 20, "stride": 10}
    return parse_params(raw)


def test_batches_pad_short_windows_and_drop_modalities_at_frames() -> None:
    table = _table(VA, face_every=2)
    table.tracks[0] = FrameTrack(**{**table.tracks[0].__dict__, "times": table.tracks[0].times[:7]})
    refs = table.windows(20, 10)
    assert refs[0] == (0, 0, 7)
    drop = {"audio": [np.arange(len(t)) % 3 == 0 for t in table.tracks]}
    batch = table.batch(refs[:3], drop)
    assert batch.inputs.steps[0].tolist() == [True] * 7 + [False] * 13
    assert batch.inputs.streams["visual"].mask[1].tolist() == [k % 2 == 0 for k in range(20)]
    assert not batch.inputs.streams["audio"].mask[1, ::3].any() and batch.inputs.streams["audio"].mask[1, 1]
    assert torch.isnan(batch.targets[0, 7:]).all() and batch.targets.shape == (3, 20, 2)


@pytest.mark.parametrize("kind", ["visual_temporal", "reliability", "moe", "dual_branch"])
def test_every_frame_model_predicts_every_frame_even_without_any_input(kind: str) -> None:
    config = FrameModelConfig(input_dims={"visual": 3, "audio": 2, "text": 4}, n_outputs=8, d_model=16, n_heads=2)
    model = MODELS[kind][0](config=config)

    def none(d: int, t: int) -> ModalityInput:
        absent = torch.zeros(2, t, dtype=torch.bool)
        return ModalityInput(torch.randn(2, t, d), absent, torch.zeros(2), torch.zeros(2, dtype=torch.bool))

    inputs = FrameInputs(
        {"visual": none(3, 6), "audio": none(2, 6)}, {"text": none(4, 1)}, torch.ones(2, 6, dtype=torch.bool)
    )
    for training in (True, False):
        model.train(training)
        out = model(inputs)
        assert out.shape == (2, 6, 8) and torch.isfinite(out).all()


def test_a_track_without_decoded_frames_gets_the_prior_at_every_annotated_frame() -> None:
    params = _params("va", "reliability")
    table = _table(VA, face_every=1)
    empty = FrameTrack("gone", "valid", np.zeros(0), {"visual": None, "audio": None}, {"visual": None, "audio": None},
                       np.zeros((0, 2), np.float32), np.arange(30) / 25.0, None)  # fmt: skip
    table.tracks.append(empty)
    model = build_model("reliability", model_config(params.fusion, {"visual": 3, "audio": 2}, n_outputs=2))
    scores = frame_scores(model, table, VA, window=20, stride=10, smoothing=0, batch_size=8, device=torch.device("cpu"))
    assert scores[-1].shape == (30, 2) and np.allclose(scores[-1], scores[-1][0]) and np.isfinite(scores[-1]).all()


def _best(task, kind: str) -> float:
    torch.manual_seed(0)
    table = _table(task, face_every=1)
    params = _params(task.name, kind)
    model = build_model(kind, model_config(params.fusion, {"visual": 3, "audio": 2}, n_outputs=len(task.outputs)))
    result, _ = train_frames(
        model=model, task=task, params=params, train=table.split("train"), valid=table.split("valid"),
        device=torch.device("cpu"), log=lambda _: None,
    )  # fmt: skip
    return result.best_val


def test_fusion_learns_what_only_the_voice_shows() -> None:
    """Arousal is audible only: the reliability-aware fusion must beat the visual-only baseline."""
    assert _best(VA, "reliability") > _best(VA, "visual_temporal") + 0.15


@pytest.mark.slow  # every task and fusion model trained on generated tracks (about a minute)
@pytest.mark.parametrize("task", [VA, EXPR, AU], ids=lambda t: t.name)
@pytest.mark.parametrize("kind", ["reliability", "moe", "dual_branch"])
def test_every_fusion_beats_the_visual_baseline_on_every_task(task, kind: str) -> None:
    assert _best(task, kind) > _best(task, "visual_temporal") + 0.05


@pytest.mark.parametrize("task", [EXPR, AU], ids=lambda t: t.name)
def test_evaluation_reports_the_trivial_references_on_valid(task) -> None:
    """reference.*: expr the training majority class, au all negative / all positive and the model's
    own scores at 0.5; each equals the metric of that constant (or that decision) computed here."""
    from pipeline.evaluate.frame_evaluation import FrameSettings, evaluate_frames
    from pipeline.tasks.outputs import decide, headline, report

    table = _table(task, face_every=1)
    params = _params(task.name, "reliability")
    model = build_model(
        "reliability", model_config(params.fusion, {"visual": 3, "audio": 2}, n_outputs=len(task.outputs))
    )
    thresholds = [0.3] * len(task.outputs) if task is AU else None
    settings = FrameSettings(window=20, stride=10, smoothing=0, thresholds=thresholds, batch_size=8)
    result = evaluate_frames(model=model, table=table, task=task, settings=settings, device=torch.device("cpu"),
                             missing_fraction=0.3, seed=0)  # fmt: skip
    valid = [k for k, t in enumerate(table.tracks) if t.split == "valid"]
    labels = np.concatenate([table.tracks[k].labels for k in valid])
    reference = result.metrics["reference"]
    if task is EXPR:
        train = np.concatenate([t.labels[:, 0] for t in table.tracks if t.split == "train"]).astype(int)
        majority = np.full((len(labels), 1), np.bincount(train).argmax(), np.float32)
        assert reference == {"majority_class": headline(task, report(task, majority, labels))}
        assert 0 < reference["majority_class"] < 0.25  # one of the 4 classes present gets F1 > 0
    else:
        assert reference["all_negative"] == 0.0
        ones = np.ones_like(labels)
        assert reference["all_positive"] == pytest.approx(headline(task, report(task, ones, labels)))
        at_half = np.concatenate([decide(task, result.scores[k]) for k in valid])
        assert reference["thresholds_fixed"] == pytest.approx(headline(task, report(task, at_half, labels)))
        assert result.metrics["f1"]["mean"] != reference["thresholds_fixed"]  # 0.3 is not 0.5
