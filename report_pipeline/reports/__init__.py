"""Report definitions: one folder per report, holding its SQL files (forward steps and undos)."""

from pathlib import Path

REPORTS_DIR = Path(__file__).parent
