"""What counts as a media file: the one list of extensions, and recognising media by its first bytes.

Ingest (the user manifest) and ``pipeline.predict`` (its folder search) both ask here, so a file
one of them accepts the other does too. A file is media when its extension is in
:data:`MEDIA_SUFFIXES` (any case) or when :func:`sniff` recognises its first bytes (a recording
saved without an extension, or with a wrong one). Neither test decodes anything: whether the file
is readable is the decoder's call, and its status says so.
"""

from __future__ import annotations

import os
from pathlib import Path

# Containers and raw streams FFmpeg (PyAV) decodes that people record or exchange video and audio in.
MEDIA_SUFFIXES: tuple[str, ...] = (
    # video containers
    ".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".wmv", ".asf", ".flv", ".f4v", ".mpg",
    ".mpeg", ".mpe", ".m2v", ".vob", ".ts", ".mts", ".m2ts", ".m2t", ".3gp", ".3g2", ".ogv", ".mxf",
    ".dv", ".rm", ".rmvb", ".divx", ".y4m", ".h264", ".264", ".hevc", ".h265",
    # audio
    ".wav", ".mp3", ".flac", ".m4a", ".m4b", ".aac", ".ogg", ".oga", ".opus", ".spx", ".wma", ".amr",
    ".awb", ".aif", ".aiff", ".aifc", ".caf", ".ac3", ".eac3", ".mka", ".mp2", ".ape", ".wv", ".au",
)  # fmt: skip

SNIFF_BYTES = 512  # enough for two MPEG-TS packets (188 bytes) and an M2TS one (192)

_ASF_GUID = bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot")


def has_media_suffix(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in MEDIA_SUFFIXES


def _transport_stream(head: bytes) -> bool:
    """MPEG-TS (sync byte 0x47 every 188 bytes) or M2TS (every 192, after a 4-byte timestamp)."""
    return any(
        len(head) > offset + 2 * size and all(head[offset + k * size] == 0x47 for k in range(3))
        for offset, size in ((0, 188), (4, 192))
    )


def sniff(head: bytes) -> str | None:
    """The container family the first bytes of a file announce, or None.

    ISO-BMFF (MP4, MOV, M4A, 3GP: a box type at byte 4), Matroska/WebM (EBML), RIFF WAVE/AVI,
    Ogg, FLAC, ID3-tagged or frame-synced MPEG audio and ADTS AAC, MPEG-TS/M2TS, MPEG-PS and MPEG
    video, ASF (WMV/WMA), FLV, AMR, AIFF, CAF.
    """
    if len(head) >= 8 and head[4:8] in _ISO_BOXES:
        return "iso-bmff"
    table = {
        b"\x1a\x45\xdf\xa3": "matroska",
        b"OggS": "ogg",
        b"fLaC": "flac",
        b"ID3": "mpeg-audio",
        b"\x00\x00\x01\xba": "mpeg-ps",
        b"\x00\x00\x01\xb3": "mpeg-video",
        _ASF_GUID: "asf",
        b"FLV\x01": "flv",
        b"#!AMR": "amr",
        b"caff": "caf",
    }
    for magic, name in table.items():
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AVI ", b"AVIX"):
        return "riff"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if _transport_stream(head):
        return "mpeg-ts"
    if _audio_frame(head):
        return "mpeg-audio"
    return None


def _audio_frame(head: bytes) -> bool:
    """An MPEG audio (MP1/2/3) or ADTS AAC frame header: 11 sync bits, then valid rate fields
    (which also rules out the UTF-16 byte-order mark FF FE of a text file)."""
    if len(head) < 3 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0 or head[:2] == b"\xff\xfe":
        return False
    if head[1] & 0x06 == 0:  # layer 00: ADTS; sampling frequency index 0-12
        return (head[2] >> 2) & 0x0F < 13
    return head[2] >> 4 != 0x0F and (head[2] >> 2) & 0x03 != 0x03  # bitrate and sample-rate index


def sniff_file(path: str | os.PathLike[str]) -> str | None:
    """:func:`sniff` of a regular file's first bytes; None when it is not media or cannot be read.

    Only for regular files: opening a FIFO would wait for a writer.
    """
    try:
        with open(path, "rb") as handle:
            return sniff(handle.read(SNIFF_BYTES))
    except OSError:
        return None


def is_media_file(path: str | os.PathLike[str]) -> bool:
    """A media extension, or (for a regular file) first bytes :func:`sniff` recognises."""
    return has_media_suffix(path) or (os.path.isfile(path) and sniff_file(path) is not None)
