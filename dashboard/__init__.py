"""Backline: back-pain triage for oncology teams."""

__version__ = "0.1.0"
