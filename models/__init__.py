"""Fusion models: one readable module per paper."""
