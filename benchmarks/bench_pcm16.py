"""Decoded audio stored as 16-bit PCM against float32: KB per media second on real recordings.

Decodes the real videos of ../shared/realdata/video and the RAVDESS speech of
../shared/realdata/audio/ravdess with the stage's decoder (16 kHz mono float32 in memory), then
writes each set's audio shard both ways as the stage does (one row per clip, zstd Parquet): as
stored now (``pipeline.decoded.AUDIO_SCHEMA``, int16) and as before (the same columns with float32
samples, the decoder's own floats). Also the largest change the 16-bit grid makes to a sample in
full scale, and how many samples lie past it (clipped).
Prints a table and writes benchmarks/results/pcm16.json.

    .venv/bin/python -m benchmarks.bench_pcm16
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.atomic import write_json
from pipeline.config import DecodeParams
from pipeline.decode import ClipDecoder
from pipeline.decoded import AUDIO_SCHEMA, from_pcm16, to_pcm16

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "realdata"
SETS = {"video": sorted((REAL / "video").glob("*.*")), "ravdess": sorted((REAL / "audio" / "ravdess").rglob("*.wav"))}
FLOAT32_SCHEMA = AUDIO_SCHEMA.set(
    AUDIO_SCHEMA.get_field_index("samples"), pa.field("samples", pa.list_(pa.float32()))
)  # the schema before this change


def shard_bytes(tracks: list[np.ndarray], schema: pa.Schema, convert) -> int:
    """Bytes of one zstd audio shard holding ``tracks`` (``convert``: float32 -> stored values)."""
    table = pa.table(
        {
            "clip_id": [f"c{k}" for k in range(len(tracks))],
            "sample_rate": [16000] * len(tracks),
            "samples": [convert(t) for t in tracks],
            "duration_s": [len(t) / 16000 for t in tracks],
        },
        schema=schema,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audio.parquet"
        pq.write_table(table, path, compression="zstd", row_group_size=len(tracks))
        return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pcm16.json"))
    args = parser.parse_args()
    params = DecodeParams()
    rows = {}
    with ClipDecoder(params, threads=1) as decoder:
        for name, paths in SETS.items():
            tracks = []
            for path in paths:
                _, audio = decoder.decode(path, path.stem, lambda rows: None)
                if audio.samples is not None:
                    tracks.append(audio.samples)
            media_s = sum(len(t) for t in tracks) / params.sample_rate
            before = shard_bytes(tracks, FLOAT32_SCHEMA, lambda t: t)
            after = shard_bytes(tracks, AUDIO_SCHEMA, to_pcm16)
            # Samples past full scale (AAC's overshoot on loud speech) are clipped, as in a 16-bit
            # file; every other sample moves by at most half a 16-bit step.
            inside = [t[np.abs(t) <= 32767 / 32768] for t in tracks]
            error = max(float(np.abs(from_pcm16(to_pcm16(t)) - t).max(initial=0.0)) for t in inside)
            clipped = sum(len(t) - len(i) for t, i in zip(tracks, inside, strict=True))
            rows[name] = {
                "clips_with_audio": len(tracks),
                "media_s": round(media_s, 2),
                "kb_per_media_s_float32": round(before / 1024 / media_s, 2),
                "kb_per_media_s_pcm16": round(after / 1024 / media_s, 2),
                "ratio": round(after / before, 3),
                "max_abs_sample_change_in_range": error,
                "samples_clipped": clipped,
                "samples": sum(len(t) for t in tracks),
            }
            r = rows[name]
            print(
                f"{name:8s} {r['clips_with_audio']:4d} clips {r['media_s']:7.1f} s: float32 "
                f"{r['kb_per_media_s_float32']:6.2f} KB/s, pcm16 {r['kb_per_media_s_pcm16']:6.2f} KB/s "
                f"({r['ratio']:.3f}x), largest change {error:.2e}, {clipped} of {r['samples']} samples clipped"
            )
    write_json({"params": {"sample_rate": params.sample_rate}, "sets": rows}, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
