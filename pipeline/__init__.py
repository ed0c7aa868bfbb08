"""emi: Emotional Mimicry Intensity estimation pipeline (library part)."""
