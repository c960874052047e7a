"""Cleo Integration Cloud / Harmony: client, models, and the X12 layer (`x12`)."""
