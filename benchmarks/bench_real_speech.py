"""Real speech through the pipeline's decode and ASR, beside a bare faster-whisper call.

On ../shared/realdata/audio/ravdess (120 clips) and copies made quiet as a distant microphone
records them (fixtures/speech.py: attenuated 20 or 25 dB, a second of room tone or digital
silence at both ends), plus a corpus of silence and near-silence:

1. decode (the stage's code): how many speech clips the silence rule drops (``silent_audio``)
   under the current rule and under the old one (whole-clip RMS below -60 dBFS), and whether the
   silence corpus stays ``silent_audio``; then the candidate silence rules (``RULES``) on every
   speech track (also 30 dB-down copies) and the silence corpus, which chose decode's defaults;
2. word error rate of the pipeline's ASR (``transcribe_clips`` on the decoded audio, default
   ``asr`` params, and the same with ``asr.vad`` on) against a bare call on the same files:
   ``WhisperModel(model, compute_type).transcribe(path, language, beam_size)``, nothing else set.
   Clips dropped (silent, no speech) count as all words deleted.

Prints a table and writes benchmarks/results/real_speech.json.

    .venv/bin/python -m benchmarks.bench_real_speech [--limit N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from fixtures.speech import SpeechFile, bare_transcripts, quiet_copy, ravdess, silence_corpus
from pipeline.asr import AsrClip, transcribe_clips, word_errors, words
from pipeline.atomic import write_json
from pipeline.config import AsrParams, DecodeParams
from pipeline.decode import decode_clip
from pipeline.decode.speech import speech_found

from .bench_asr import cpu_seconds

REPO = Path(__file__).resolve().parents[1]
RAVDESS = REPO.parent / "shared" / "realdata" / "audio" / "ravdess"
# At 25 dB down, RAVDESS's room tone (its quietest quarter second) rounds to digital silence in 16
# bits: 25 dB with room tone gave the same files' results as 25 dB with zeros, so it is left out.
QUIET = ((20.0, "room"), (25.0, "zeros"))
OLD_SILENCE_RMS_DBFS = -60.0


def decode_all(files: list[Path], params: DecodeParams) -> list:
    return [decode_clip(path, params, clip_id=path.stem) for path in files]


def pipeline_asr(decoded: list, params: AsrParams) -> tuple[list[str | None], dict]:
    """Text per clip (None when the pipeline transcribes nothing) and its CPU/wall seconds."""
    clips = [
        AsrClip(d.report.clip_id, d.audio.samples, d.audio.sample_rate, d.report.faults, d.report.message)
        for d in decoded
    ]
    cpu, start = cpu_seconds(), time.perf_counter()
    rows = list(transcribe_clips(clips, params, device="cpu", workers=params.workers))
    timing = {"wall_s": time.perf_counter() - start, "cpu_s": cpu_seconds() - cpu}
    return [row.text if row.status == "ok" else None for row in rows], timing


def bare_asr(files: list[Path], params: AsrParams) -> tuple[list[str], dict]:
    cpu, start = cpu_seconds(), time.perf_counter()  # model loading included, as in the pipeline's
    options = dict(model=params.model, compute_type=params.compute_type, language=params.language)
    texts = bare_transcripts(files, **options, beam_size=params.beam_size)
    return texts, {"wall_s": time.perf_counter() - start, "cpu_s": cpu_seconds() - cpu}


def wer(references: list[str], texts: list[str | None]) -> dict:
    errors = sum(word_errors(words(r), words(t or "")) for r, t in zip(references, texts, strict=True))
    n_words = sum(len(words(r)) for r in references)
    return {"wer": errors / n_words, "errors": errors, "words": n_words, "dropped": sum(t is None for t in texts)}


def track_levels(decoded: list) -> list[dict]:
    """Per track: whole-clip RMS, active level, and whether Silero VAD finds speech in the raw and
    in the level-normalised track (what the candidate silence rules read)."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    rows = []
    for d in decoded:
        samples, active = d.audio.samples, d.report.audio_active_dbfs
        rows.append(
            {
                "rms": d.report.audio_dbfs,
                "active": active,
                "vad_raw": bool(get_speech_timestamps(samples, VadOptions())),
                "vad_levelled": active > -200 and speech_found(samples, d.audio.sample_rate, active),
            }
        )
    return rows


# The candidate rules, each marking a track silent; the last is decode's (defaults -80 and -60).
RULES = {
    "whole-clip RMS < -60 dBFS (the rule before)": lambda t: t["rms"] < -60,
    "active < -65": lambda t: t["active"] < -65,
    "active < -72": lambda t: t["active"] < -72,
    "active < -80": lambda t: t["active"] < -80,
    "active < -80, or < -60 and VAD on the raw track finds nothing": (
        lambda t: t["active"] < -80 or (t["active"] < -60 and not t["vad_raw"])
    ),
    "active < -80, or < -60 and VAD on the levelled track finds nothing (adopted)": (
        lambda t: t["active"] < -80 or (t["active"] < -60 and not t["vad_levelled"])
    ),
}


def rule_table(speech: list[dict], silence: list[dict]) -> dict:
    table = {}
    for name, rule in RULES.items():
        table[name] = {
            "speech_marked_silent": sum(map(rule, speech)),
            "silence_not_marked": sum(not rule(t) for t in silence),
        }
        print(
            f"  {name:78s} speech marked silent {table[name]['speech_marked_silent']:4d} / {len(speech)}"
            f"   silence not marked {table[name]['silence_not_marked']:2d} / {len(silence)}",
            flush=True,
        )
    return {"speech_tracks": len(speech), "silence_tracks": len(silence), "rules": table}


def evaluate(
    variant: str, files: list[SpeechFile], decode_params: DecodeParams, asr_params: AsrParams, levels: list[dict]
) -> dict:
    paths = [f.path for f in files]
    references = [f.transcript for f in files]
    decoded = decode_all(paths, decode_params)
    levels += track_levels(decoded)
    result = {
        "clips": len(files),
        # audio-only files: their status is no_video_stream, silent_audio is among their faults
        "silent_audio": sum("silent_audio" in d.report.faults for d in decoded),
        "silent_audio_old_rule": sum(
            d.report.audio_dbfs is not None and d.report.audio_dbfs < OLD_SILENCE_RMS_DBFS for d in decoded
        ),
        "active_dbfs_min": min(d.report.audio_active_dbfs for d in decoded),
    }
    bare_texts, result["bare_timing"] = bare_asr(paths, asr_params)
    result["bare"] = wer(references, bare_texts)
    for name, params in (("pipeline", asr_params), ("pipeline_vad", asr_params.model_copy(update={"vad": True}))):
        texts, result[f"{name}_timing"] = pipeline_asr(decoded, params)
        result[name] = wer(references, texts)
    print(
        f"{variant:14s} {len(files):4d} clips  silent_audio {result['silent_audio']:3d} "
        f"(old rule {result['silent_audio_old_rule']:3d})  WER bare {100 * result['bare']['wer']:5.2f}%  "
        f"pipeline {100 * result['pipeline']['wer']:5.2f}% (dropped {result['pipeline']['dropped']})  "
        f"pipeline+VAD {100 * result['pipeline_vad']['wer']:5.2f}% (dropped {result['pipeline_vad']['dropped']})",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="first N RAVDESS clips (default all 120)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "real_speech.json"))
    args = parser.parse_args()
    decode_params, asr_params = DecodeParams(), AsrParams()
    originals = ravdess(RAVDESS)[: args.limit]
    results: dict = {"variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        silence = silence_corpus(Path(tmp) / "silence")
        silence_decoded = decode_all(list(silence.values()), decode_params)
        reports = [d.report for d in silence_decoded]
        results["silence_corpus"] = {
            name: {"silent_audio": "silent_audio" in r.faults, "active_dbfs": r.audio_active_dbfs}
            for name, r in zip(silence, reports, strict=True)
        }
        silent = sum(v["silent_audio"] for v in results["silence_corpus"].values())
        print(f"silence corpus: {silent} of {len(silence)} silent_audio", flush=True)
        variants = {"orig": originals}
        for attenuation, pad in QUIET:
            copies = [quiet_copy(f, Path(tmp), attenuation_db=attenuation, pad=pad) for f in originals]
            variants[copies[0].variant] = copies
        levels: list[dict] = []
        for variant, files in variants.items():
            results["variants"][variant] = evaluate(variant, files, decode_params, asr_params, levels)
        # Quieter still, for the silence rule only (decode, no ASR): 30 dB down.
        deeper = [quiet_copy(f, Path(tmp), attenuation_db=30.0, pad="zeros") for f in originals]
        levels += track_levels(decode_all([f.path for f in deeper], decode_params))
        print("silence rules, on every speech track above and 30 dB copies:", flush=True)
        results["silence_rules"] = rule_table(levels, track_levels(silence_decoded))
    for name in ("bare", "pipeline", "pipeline_vad"):
        errors = sum(v[name]["errors"] for v in results["variants"].values())
        n_words = sum(v[name]["words"] for v in results["variants"].values())
        results[f"{name}_wer_all"] = errors / n_words
    results.update(
        machine={"arch": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()},
        asr={"model": asr_params.model, "compute_type": asr_params.compute_type, "beam_size": asr_params.beam_size},
        decode={"silence_dbfs": decode_params.silence_dbfs, "speech_check_dbfs": decode_params.speech_check_dbfs},
    )
    print(
        f"all variants: WER bare {100 * results['bare_wer_all']:.2f}%"
        f"  pipeline {100 * results['pipeline_wer_all']:.2f}%"
        f"  pipeline+VAD {100 * results['pipeline_vad_wer_all']:.2f}%"
    )
    write_json(results, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
