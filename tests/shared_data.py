"""Where the project's shared real data lives: ``shared/`` beside the repository (as in CI),
else the development machine's /work/shared."""

from pathlib import Path

_CANDIDATES = [Path(__file__).resolve().parents[1].parent / "shared", Path("/work/shared")]
SHARED = next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0])
RELION = SHARED / "data" / "relion"
