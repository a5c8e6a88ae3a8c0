"""Shared losses (filled by the foundation issue)."""

__all__: list[str] = []
