"""Stage asr: Whisper transcripts of every decoded clip into data/asr/transcripts.parquet, and the
encoder states of the clips that fit one window into data/asr/encoder (``asr.share_encoder``)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pyarrow.parquet as pq
from tqdm import tqdm

from pipeline.asr import AsrClip, AsrModelError, Transcript, recognizer_device, transcribe_clips, transcripts_table
from pipeline.atomic import write_parquet
from pipeline.cli import user_errors
from pipeline.config import AsrParams, load_params
from pipeline.decoded import iter_clip_audio
from pipeline.runtime.executors import Executor, open_executor
from pipeline.whisper.encoder_states import StatesWriter, model_name


@user_errors()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--decoded", required=True, help="decode output folder (audio-*.parquet)")
    parser.add_argument("--status", required=True, help="decode status table")
    parser.add_argument("--out", required=True, help="transcripts Parquet file to write")
    parser.add_argument("--encoder-out", required=True, help="folder for the shared encoder states")
    args = parser.parse_args(argv)
    everything = load_params(args.params)
    params = everything.asr
    with open_executor(everything.runtime, "asr", workers=params.workers) as executor:
        return _run(args, params, executor)


def _run(args: argparse.Namespace, params: AsrParams, executor: Executor) -> int:
    device = executor.device(lambda: recognizer_device(params.backend))

    # The status table has exactly one row per manifest clip: it fixes the output's rows and order.
    status = pq.read_table(args.status, columns=["clip_id", "status", "message", "faults"]).to_pylist()
    by_id = {row["clip_id"]: row for row in status}
    audio_seconds = 0.0

    def clips() -> Iterator[AsrClip]:
        nonlocal audio_seconds
        for audio in iter_clip_audio(args.decoded, clip_ids=by_id):
            row = by_id[audio.clip_id]
            if audio.samples is not None and "silent_audio" not in (row["faults"] or ()):
                audio_seconds += len(audio.samples) / audio.sample_rate
            yield AsrClip(
                clip_id=audio.clip_id,
                samples=audio.samples,
                sample_rate=audio.sample_rate,
                faults=row["faults"] or (),
                decode_message=row["message"] or audio.reason,
            )

    started = time.perf_counter()
    done: dict[str, Transcript] = {}
    states = StatesWriter(args.encoder_out, model=model_name(params.model, params.compute_type), device=device)
    progress = tqdm(total=len(status), desc="asr", unit="clip", file=sys.stderr)
    try:
        for transcript in transcribe_clips(clips(), params, device=device, workers=params.workers, executor=executor):
            if transcript.encoder_states is not None:
                states.add(transcript.clip_id, transcript.encoder_states)
                transcript = dataclasses.replace(transcript, encoder_states=None)  # on disk now, not in memory
            done[transcript.clip_id] = transcript
            progress.update()
    except AsrModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        progress.close()
    states.close()
    rows = [
        done.get(row["clip_id"])
        or Transcript.skipped(row["clip_id"], "no_audio", "clip has no row in the decoded audio shards")
        for row in status
    ]
    write_parquet(transcripts_table(rows), args.out)

    elapsed = time.perf_counter() - started
    counts = Counter(row.status for row in rows)
    speed = f", {audio_seconds / elapsed:.1f}x real time" if elapsed > 0 and audio_seconds else ""
    print(
        f"asr: {len(rows)} clips with {params.backend} {params.model} on {device} ({executor.name} executor) "
        f"in {elapsed:.1f} s{speed}; "
        f"status {dict(sorted(counts.items()))}; with speech {sum(r.has_speech for r in rows)}; "
        f"encoder states kept for {states.clips}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
