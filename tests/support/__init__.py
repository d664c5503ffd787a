"""What several test modules share: the repository root, helpers and real services."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
