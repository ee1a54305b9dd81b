"""Targeted firmware updates: download, verify, install with RAUC when idle, commit or roll back."""
