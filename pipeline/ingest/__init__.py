"""Stage ingest's library: the dataset adapters that turn a release on disk into the manifest.

Clip-level releases (task emi: the demo's clips, Hume-Vidmimic2, a user's CSV) become one manifest
row per clip with its six labels (``manifest.py``). Frame-level releases (Aff-Wild2, or the tracks
demo in its layout: ``affwild2.py``) become one manifest row per track plus the frame labels of
every task present (``frame_labels.py``). :func:`release.read_release` picks the adapter.
"""
