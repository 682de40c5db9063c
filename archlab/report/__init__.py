"""Self-contained HTML reports from run folders: data first (pure functions), then plots, then one writer.

A report reads result files only, never a live study.
"""
