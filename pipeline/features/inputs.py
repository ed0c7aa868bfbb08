"""What the feature stage feeds each extractor, and the per-clip digest of that input.

Each provider returns ``(clip_digest, inputs)``: ``clip_digest(clip_id)`` hashes everything of the
clip's input that shapes its features (so a shard is recomputed exactly when one of its clips'
inputs changed), and ``inputs(clip_ids)`` yields, for those clips, the extractor's input object
or :class:`pipeline.features.shards.Unavailable` with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from functools import lru_cache
from pathlib import Path

import pyarrow.parquet as pq

from pipeline.features import TextInput, unavailable_reason
from pipeline.features.runner import Unavailable, file_digest

Provider = tuple[Callable[[str], str], Callable[[list[str]], Iterator]]


def digest(obj: object) -> str:
    """sha256 of an object's canonical JSON."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def transcript_inputs(asr: str | Path) -> Provider:
    """Over the transcripts table: a clip without speech gets text None and its ASR status."""
    columns = ["clip_id", "text", "has_speech", "status"]
    rows = {r["clip_id"]: r for r in pq.read_table(asr, columns=columns).to_pylist()}

    def inputs(clip_ids: list[str]) -> Iterator:
        for c in clip_ids:
            r = rows.get(c)
            if r is None:
                yield Unavailable(c, "no transcript")
            elif r["has_speech"]:
                yield TextInput(c, r["text"], "")
            else:
                yield TextInput(c, None, r["status"])

    return (lambda c: digest(rows.get(c))), inputs


def decoded_inputs(
    modality: str,
    decoded: str | Path,
    status: Mapping[str, dict],
    shared: dict[str, Path] | None = None,
    shared_model: str = "",
) -> Provider:
    """Over the decoded frames (visual) or audio shards; ``status`` rows by clip id; ``shared``:
    the encoder states of encoder ``shared_model`` that ASR kept for audio clips ({clip_id: file},
    ``pipeline.whisper.encoder_states.index``)."""
    # Imported here: the text stage reads no decoded shards and must not depend on their reader.
    from pipeline.decoded import iter_clip_audio, iter_clip_frames

    kind, reader = ("frames", iter_clip_frames) if modality == "visual" else ("audio", iter_clip_audio)
    source = {}
    for path in sorted(Path(decoded).glob("audio-*.parquet")):  # audio shards hold one row per clip
        for c in pq.read_table(path, columns=["clip_id"]).column(0).to_pylist():
            source[c] = path.with_name(path.name.replace("audio-", f"{kind}-"))
    file_hash = lru_cache(maxsize=None)(file_digest)

    shared = shared or {}

    def clip_digest(c: str) -> str:
        found = [status.get(c), file_hash(source[c]) if c in source and source[c].is_file() else None]
        return digest([*found, file_hash(shared[c])] if c in shared else found)

    def blocked(c: str) -> str:
        row = status.get(c) or {}
        return unavailable_reason(
            modality,
            faults=row.get("faults") or [],
            n_frames=row.get("n_frames", 0),
            has_audio=row.get("has_audio", True),
        )

    def inputs(clip_ids: list[str]) -> Iterator:
        usable = [c for c in clip_ids if not blocked(c)]
        yield from (Unavailable(c, blocked(c)) for c in clip_ids if blocked(c))
        if usable:
            yield from _with_states(reader(decoded, clip_ids=usable), shared, shared_model)

    return clip_digest, inputs


def _with_states(items: Iterator, shared: dict[str, Path], model: str) -> Iterator:
    """Audio inputs with the encoder states ASR kept for them, read clip by clip as the inputs come
    (a long clip's states are tens of MB: a batch's worth at once would not be bounded)."""
    if not shared:
        yield from items
        return
    from pipeline.whisper import encoder_states

    for item in items:
        kept = next(encoder_states.read(shared, [item.clip_id]), (None, None))[1]
        yield item if kept is None else dataclasses.replace(item, encoder_states=kept, encoder_model=model)


def pickle_inputs(model: str, manifest: str | Path, status: str | Path) -> Provider:
    """Over the organisers' pickles of source ``model`` (``pipeline.features.hume``): each clip's
    pickle beside its video (manifest ``path``), with its duration from the decode status. A clip
    without one is unavailable; the digest hashes the pickle's bytes (and the duration where the
    source's frame times use it), so only shards whose pickles changed are computed again."""
    from pipeline.features.hume import SOURCES, PickleInput, pickle_path

    source = SOURCES[model]
    paths = {r["clip_id"]: r["path"] for r in pq.read_table(manifest, columns=["clip_id", "path"]).to_pylist()}
    status_rows = pq.read_table(status, columns=["clip_id", "duration_s"]).to_pylist()
    durations = {r["clip_id"]: r["duration_s"] for r in status_rows}
    found = {c: pickle_path(path, source.folder) for c, path in paths.items()}
    missing = f"no organiser pickle: no {source.folder}/<stem>.pkl beside the clip's video"

    def clip_digest(c: str) -> str:
        path = found.get(c)
        duration = durations.get(c) if source.uses_duration else None
        return digest([source.name, None if path is None else [path.name, file_digest(path)], duration])

    def inputs(clip_ids: list[str]) -> Iterator:
        for c in clip_ids:
            path = found.get(c)
            yield Unavailable(c, missing) if path is None else PickleInput(c, path, durations.get(c))

    return clip_digest, inputs


def provider(
    modality: str,
    *,
    manifest: str | Path,
    decoded: str | Path,
    status: str | Path,
    asr: str | Path,
    encoder: str | Path | None = None,
    model: str = "",
) -> Provider:
    """The modality's provider over the stage's input files: the manifest, the decode output folder,
    the decode status table and the transcripts table (text reads only the transcripts). ``model``
    is the extractor's ``model_name``: an organiser source (``hume-vit``, ``hume-wav2vec2``) reads
    its pickles and the decode status only; for audio, the encoder states ASR kept (folder
    ``encoder``) are used when their encoder is ``model``."""
    if modality == "text":
        return transcript_inputs(asr)
    from pipeline.features.hume import SOURCES

    if model in SOURCES:
        return pickle_inputs(model, manifest, status)
    columns = ["clip_id", "status", "faults", "n_frames", "has_audio"]
    rows = {r["clip_id"]: r for r in pq.read_table(status, columns=columns).to_pylist()}
    shared = None
    if modality == "audio" and encoder is not None and model:
        from pipeline.whisper import encoder_states

        shared = encoder_states.index(encoder, model)
    return decoded_inputs(modality, decoded, rows, shared, model)
