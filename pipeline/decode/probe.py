"""Opening a media file with PyAV: its streams, their times, and demux/decode with error counting."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av

from pipeline.cli import describe


@dataclass
class Probe:
    """The streams decode uses: first real video stream, an audio stream (global indices).

    ``audio_candidates``: every audio stream, those with the default disposition first, then the
    others in file order; ``audio_index`` is the first of them until
    :func:`pipeline.decode.audio.choose_audio_stream` picks one with signal (multi-track recorders
    put a silent track first). ``audio_origin``/``audio_duration`` are those of ``audio_index``.
    """

    video_index: int | None
    audio_index: int | None
    audio_origin: Fraction | None
    audio_duration: Fraction | None
    audio_candidates: list[int] = field(default_factory=list)
    video_times: tuple[Fraction | None, Fraction | None] = (None, None)  # stream_times of video_index


def stream_times(stream: av.stream.Stream) -> tuple[Fraction | None, Fraction | None]:
    """(start, duration) of a stream in seconds from its header, None where the header has none."""
    tb = stream.time_base
    start = Fraction(stream.start_time) * tb if stream.start_time is not None and tb else None
    duration = Fraction(stream.duration) * tb if stream.duration and tb else None
    return start, duration


def probe(path: str) -> Probe:
    with av.open(path) as container:
        # Cover art in audio files is a video stream of one picture, not a video.
        videos = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
        # sorted is stable: default-disposition streams first, each group in file order.
        audios = sorted(container.streams.audio, key=lambda s: not s.disposition & av.stream.Disposition.default)
        video = videos[0] if videos else None
        audio = audios[0] if audios else None
        a_start, a_dur = stream_times(audio) if audio is not None else (None, None)
        return Probe(
            video_index=video.index if video is not None else None,
            audio_index=audio.index if audio is not None else None,
            audio_origin=a_start,
            audio_duration=a_dur,
            audio_candidates=[s.index for s in audios],
            video_times=stream_times(video) if video is not None else (None, None),
        )


def audio_stream_times(path: str, index: int) -> tuple[Fraction | None, Fraction | None]:
    """(start, duration) of audio stream ``index`` from its header (see :func:`stream_times`)."""
    with av.open(path) as container:
        return stream_times(container.streams[index])


def video_end_by_demux(path: str, index: int) -> tuple[Fraction | None, Fraction | None]:
    """(first pts, end of the last packet) of stream ``index`` in seconds, reading packets only."""
    first = end = None
    with av.open(path) as container:
        stream = container.streams[index]
        tb = stream.time_base
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            pts = Fraction(packet.pts) * tb
            first = pts if first is None else min(first, pts)
            stop = pts + Fraction(packet.duration or 0) * tb
            end = stop if end is None else max(end, stop)
    return first, end


@dataclass
class StreamLog:
    """What went wrong while demuxing and decoding one stream."""

    kind: str
    packets: int = 0
    decode_errors: int = 0
    first_error: str = ""
    demux_error: str = ""

    def record(self, error: BaseException) -> None:
        """Count one packet (or resampled frame) that failed."""
        self.decode_errors += 1
        self.first_error = self.first_error or describe(error)

    def problem(self) -> str:
        """A message when the stream failed to demux or decode, else ""."""
        parts = []
        if self.decode_errors:
            parts.append(
                f"{self.kind}: {self.decode_errors} of {self.packets} packets failed to decode "
                f"(first: {self.first_error})"
            )
        if self.demux_error:
            parts.append(f"{self.kind}: demuxing stopped: {self.demux_error}")
        return "; ".join(parts)


def decoded_frames(container: av.container.InputContainer, stream: av.stream.Stream, log: StreamLog) -> Iterator:
    """Every frame of ``stream``; a packet that fails to decode is counted and skipped, as ffmpeg does."""
    try:
        for packet in container.demux(stream):
            if packet.size:
                log.packets += 1
            try:
                frames = packet.decode()
            except av.error.FFmpegError as error:
                log.record(error)
                continue
            yield from frames
    except av.error.FFmpegError as error:
        log.demux_error = describe(error)
        with contextlib.suppress(av.error.FFmpegError):
            yield from stream.codec_context.decode(None)  # frames still buffered in the decoder
