"""Datasets and pair lists: LFW and LFW-style folders, pair-list readers."""
