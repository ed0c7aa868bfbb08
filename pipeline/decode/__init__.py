"""The decoder: frames at ``decode.fps`` chosen by timestamp, face crops, 16 kHz mono audio, status.

Modules: ``probe`` (streams and times), ``video`` (the sampling rule), ``audio`` (resampling and
level), ``faces`` (detector and crops), ``tracking`` (the face followed between detections),
``faults`` (the status rules, a pure function), ``clip`` (one clip), ``writer`` (the stage: shards
on the executor's workers). The output layout, its schemas and
its readers are in ``pipeline/decoded.py``.

Timeline of a clip
------------------
t = 0 is the start of the video stream (its header ``start_time``, else its first frame's pts);
for an audio-only file, the start of the audio stream. Frames and audio share this origin: audio
that starts later than the video (the real .mov test clip starts its audio 2.43 s in) is padded
with zeros in front, audio that starts earlier is cropped, so sample n of the audio and a frame at
``time_s`` refer to the same instant.

Duration (``duration_s``)
-------------------------
Video file: the video stream's header duration; when the header has none (Matroska, WebM), the end
(pts + duration) of its last packet, found by a demux-only pass (no decoding). Audio-only file:
the audio stream's header duration, else the decoded length. The container's fps is never used.

Frames
------
``T = floor(duration * fps)``. Sample i (i = 0..T-1) at ``t_i = i / fps`` is the decoded frame
with the largest pts <= t_i, the frame on screen at t_i (samples before the first frame take the
first frame). Frames whose pts go backwards are dropped; a later frame with an equal pts replaces
the earlier one. Each chosen frame is converted to RGB inside the decoder (swscale area
averaging: no aliasing, 25% less CPU than bicubic) at ``max_side`` for its longer display side
(sample aspect ratio and rotation metadata applied, never upscaled); only chosen frames are
converted. A video whose decoded frames end more than
``TRUNCATION_TOLERANCE_S`` before the header's duration is truncated: it is ``partial`` (see
Damage) and its samples past the last frame's end are not written.

Audio
-----
Of several audio streams (multi-track recorders), the one decoded is the first, default
disposition first, whose first ``audio.SIGNAL_CHECK_S`` seconds reach ``silence_dbfs``
(``audio.choose_audio_stream``; the first when none does), and the status message names it even
when the clip is ok. swresample to mono float32 at ``sample_rate`` (flushed), aligned to the clip
origin, then cropped or zero-padded to ``floor(duration * sample_rate + 1/2)`` samples (this drops
AAC's end padding). The level is the RMS of those samples around their mean (a DC offset alone is
silence) in dB full scale (floored at -200 for digital silence).

Status
------
``faults`` lists every fault found; ``status`` is the first of ``STATUS_PRIORITY`` present, else
``ok``; ``message`` joins the faults' messages in the same order, then notes (which of several audio
streams was read; "" when ok without notes); the rules are
``faults.classify``. corrupt: nothing usable decoded (see Damage). error: the worker process
decoding it died twice (a crash in native code, the OOM killer; under either executor), so it was
skipped: nothing was decoded. partial: something was lost but some frames or the audio decoded.
too_short: duration < ``min_duration_s``. no_video_stream: an audio-only file (its
audio is still decoded). no_audio_stream: no audio stream at all. silent_audio: level below
``silence_dbfs``. no_face: fewer than ``min_face_fraction`` of the sampled frames have a face (only
for clips with at least one sampled frame).

Damage
------
A file loses something when it is missing or cannot be opened, has no audio or video stream, a
stream fails to demux or decode (any packet), the video is truncated, or audio samples are
NaN/Inf (a float WAV can hold them: they are set to 0 and counted before the level or anything
else reads the track, so a few never make a clip ``silent_audio``; over
``faults.MAX_NONFINITE_FRACTION``, 1% of the track, the audio is dropped instead). When no frame
and no usable audio decoded, the clip is ``corrupt`` and every modality is missing (the model's
learned prior). Otherwise it is ``partial``: what decoded is used (frames, audio: the modality
flags downstream say which) and the message says what was lost and what is used.

Faces
-----
Each distinct source frame goes through ``pipeline.decode.faces.FaceDetector`` (MediaPipe BlazeFace,
short-range model, full-range where it finds nothing; the largest face scoring at least
``min_face_score``), or, on all but every ``detect_every``-th frame, ``tracking.FaceTracker``
follows the last detected face by template match (same box size and score; detected again on a
lost match or a scene cut); ``face_score`` is its confidence, ``crop`` a ``crop_size`` square around the
box with ``crop_margin`` of the box side on each edge (black outside the frame), INTER_AREA.

Outputs and reading
-------------------
``decode_manifest`` writes ``frames-NNNNN.parquet`` / ``audio-NNNNN.parquet`` (one pair per shard
of ``clips_per_shard`` manifest rows, in manifest order, each file renamed into place when
complete); ``pipeline.decoded.iter_clip_frames`` and ``iter_clip_audio`` read them back shard by
shard.
``decode_clip`` decodes one file in memory (for tools and tests) through exactly the
same code path. Output is deterministic: the same inputs give byte-identical shards, whatever
``workers`` is and whichever executor (``runtime.executor``: local processes or Ray) ran them.
"""

from pipeline.decode.clip import ClipDecoder, ClipReport, DecodedClip, FrameRows, decode_clip
from pipeline.decode.faults import STATUS_PRIORITY, STATUSES, Observations, Verdict, classify
from pipeline.decode.video import sample_frames
from pipeline.decode.writer import ClipJob, clip_jobs, decode_manifest, decode_shard, status_table, timeline_table

__all__ = [
    "STATUSES",
    "STATUS_PRIORITY",
    "ClipDecoder",
    "ClipReport",
    "DecodedClip",
    "FrameRows",
    "Observations",
    "Verdict",
    "classify",
    "decode_clip",
    "ClipJob",
    "clip_jobs",
    "decode_manifest",
    "decode_shard",
    "sample_frames",
    "status_table",
    "timeline_table",
]
