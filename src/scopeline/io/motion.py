"""Movie-alignment results (per-frame global shifts) from the files users have.

Every reader returns :class:`Trajectory` objects: the shifts of one movie in pixels, with what
the file says about pixel size and dose. A malformed item raises
:class:`scopeline.errors.InputError` naming the file, so the caller can record it as failed.

Sources:

- RELION per-movie motion STAR (``data_general`` + ``data_global_shift``): a dedicated parser
  that reads bytes and splits lines (thousands of files per second), no generic STAR reader.
- RELION ``corrected_micrographs.star`` (3.0 plain ``data_`` or 3.1+ ``data_optics`` +
  ``data_micrographs``): one row per micrograph; the movie's trajectory comes from the motion
  STAR named by ``rlnMicrographMetadata``, or only the accumulated motion
  (``rlnAccumMotionTotal/Early/Late``, RELION sums them in unbinned pixels) when that column
  is absent.
- MotionCor2 full-frame logs (``*-Full.log``): ``frame shift_x shift_y`` lines.
- CSV with columns ``movie, frame, x, y`` (optional ``pixel_size, dose_per_frame,
  pre_exposure, micrograph``).
- Scipion movie sets (``.sqlite``) with ``_alignment._xshifts`` / ``_alignment._yshifts``.

Units: RELION stores global shifts in unbinned movie pixels, so the pixel size that converts
them to Å is ``rlnMicrographOriginalPixelSize`` (``rlnMicrographBinning`` is kept for
information only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputError
from .sets import read_scipion_set, resolve_relion_path, scipion_filename
from .star import quote_star_value, read_star, split_star_line

#: RELION marks frames outside the aligned range (``--first_frame``) with this shift.
NOT_OBSERVED = -9999.0

SHIFT_X = "rlnMicrographShiftX"
SHIFT_Y = "rlnMicrographShiftY"
FRAME_NUMBER = "rlnMicrographFrameNumber"
ACCUM_LABELS = ("rlnAccumMotionTotal", "rlnAccumMotionEarly", "rlnAccumMotionLate")
MOTIONCOR2_LOG_SUFFIXES = ("0-Full.log", "-Full.log")


@dataclass
class Trajectory:
    """The global alignment of one movie.

    ``shifts_px`` is (n, 2) x/y in pixels of size ``pixel_size`` (Å); ``frame_numbers`` are
    the 1-based frame numbers of those rows (RELION can skip leading frames). When the source
    holds only RELION's accumulated motion, ``shifts_px`` is empty and ``accumulated_px`` is
    ``(total, early, late)`` in pixels. ``warning`` says how the reader had to make do (e.g.
    accumulated motion because the motion STAR is missing), for the run's warnings.
    """

    movie: str
    shifts_px: np.ndarray
    pixel_size: float | None = None
    dose_per_frame: float | None = None
    pre_exposure: float = 0.0
    binning: float = 1.0
    source: str = ""
    micrograph: str | None = None
    micrograph_nodw: str | None = None
    row: dict = field(default_factory=dict)
    frame_numbers: np.ndarray | None = None
    accumulated_px: tuple[float, float, float] | None = None
    metadata: str | None = None
    warning: str | None = None

    def __post_init__(self) -> None:
        self.shifts_px = np.asarray(self.shifts_px, dtype=float).reshape(-1, 2)
        if self.frame_numbers is None:
            self.frame_numbers = np.arange(1, len(self.shifts_px) + 1)

    @property
    def n_frames(self) -> int:
        return len(self.shifts_px)


# --------------------------------------------------------------------------- helpers


def _positive(value) -> float | None:
    """A strictly positive finite float, or None."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _float(value, default: float) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) else default


def _check_shifts(path, shifts: np.ndarray, frames: np.ndarray) -> None:
    """Raise for trajectories no motion statistic can be computed from."""
    bad = ~np.isfinite(shifts).all(axis=1)
    if bad.any():
        raise InputError(path, f"non-numeric shift (NaN/inf) at frame {int(frames[bad][0])}",
                         "re-run motion correction for this movie")
    if len(shifts) < 2:
        raise InputError(path, f"only {len(shifts)} aligned frame(s): no motion between frames")
    if np.any(np.diff(frames) <= 0):
        raise InputError(path, "frame numbers are not strictly increasing")


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return split_star_line(text)[0]
    return text


def _split_blocks(text: str) -> dict[str, str]:
    """``{block name: body}`` of a STAR text (names without ``data_``)."""
    blocks: dict[str, str] = {}
    starts = []
    pos = text.find("data_")
    while pos != -1:
        if pos == 0 or text[pos - 1] == "\n":
            starts.append(pos)
        pos = text.find("data_", pos + 5)
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        line_end = text.find("\n", start)
        line_end = end if line_end == -1 or line_end > end else line_end
        name = text[start + 5 : line_end].strip()
        blocks[name] = text[line_end:end]
    return blocks


def _parse_pairs(body: str) -> dict[str, str]:
    """Key-value (non-loop) block, or the first row of a loop block."""
    if "loop_" in body:
        labels, rows = _parse_loop(body)
        return dict(zip(labels, rows[0])) if rows else {}
    out = {}
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("_"):
            parts = line.split(None, 1)
            out[parts[0][1:]] = _unquote(parts[1]) if len(parts) > 1 else ""
    return out


def _parse_loop(body: str) -> tuple[list[str], list[list[str]]]:
    labels: list[str] = []
    rows: list[list[str]] = []
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "loop_":
            continue
        if line.startswith("_"):
            labels.append(line.split()[0][1:])
        else:
            rows.append(line.split())
    return labels, rows


# --------------------------------------------------------------------------- RELION motion STAR


TRUNCATED_FIX = "the file is cut short (copy or disk problem): copy it again or re-run motion correction"


def _check_row_lengths(path, labels: list[str], rows: list[list[str]]) -> None:
    """Raise when a ``data_global_shift`` row has fewer values than labels (a cut loop)."""
    if len({len(r) for r in rows}) != 1 or len(rows[0]) != len(labels):
        short = next(k for k, r in enumerate(rows) if len(r) != len(labels))
        raise InputError(path, f"data_global_shift row {short + 1} has {len(rows[short])} value(s) "
                         f"for {len(labels)} labels", TRUNCATED_FIX)


def _check_frame_count(path, text: str, body: str, frame_numbers: np.ndarray, general: dict) -> None:
    """Raise when the loop holds fewer frames than ``rlnImageSizeZ`` declares (RELION writes
    one row per frame, unobserved ones as -9999; rows may start after frame 1 in files not
    written by RELION, so the last frame number is compared), frame numbers beyond it, or the
    file ends inside the last row (its last value may be cut short yet still parse as a
    number)."""
    n_declared = general.get("rlnImageSizeZ")
    try:
        n_declared = int(float(n_declared)) if n_declared not in (None, "") else None
    except ValueError:
        n_declared = None
    if n_declared is not None and n_declared > 0:
        last = int(frame_numbers.max())
        if last < n_declared:
            raise InputError(path, f"data_global_shift has {len(frame_numbers)} frame(s) (up to frame {last}) "
                             f"where rlnImageSizeZ declares {n_declared}", TRUNCATED_FIX)
        if last > n_declared:
            raise InputError(path, f"frame number {last} beyond rlnImageSizeZ {n_declared}")
    if text.endswith(body) and not body.rstrip(" \t").endswith(("\n", "\r")):
        raise InputError(path, "the file ends inside the last data_global_shift row", TRUNCATED_FIX)


def parse_relion_motion_star(text: str, path: str | Path) -> Trajectory:
    """A RELION per-movie motion STAR's text -> :class:`Trajectory` (``path`` names errors)."""
    blocks = _split_blocks(text)
    if "global_shift" not in blocks:
        raise InputError(path, "no data_global_shift block (not a RELION motion STAR, or truncated)")
    general = _parse_pairs(blocks.get("general", ""))
    labels, rows = _parse_loop(blocks["global_shift"])
    try:
        ix, iy = labels.index(SHIFT_X), labels.index(SHIFT_Y)
    except ValueError:
        raise InputError(path, f"data_global_shift lacks {SHIFT_X}/{SHIFT_Y}") from None
    iframe = labels.index(FRAME_NUMBER) if FRAME_NUMBER in labels else None
    if not rows:
        raise InputError(path, "data_global_shift has no rows")
    _check_row_lengths(path, labels, rows)
    try:
        table = np.array(
            [[float(r[iframe]) if iframe is not None else k + 1, float(r[ix]), float(r[iy])]
             for k, r in enumerate(rows)],
            dtype=float,
        )
    except (ValueError, IndexError):
        raise InputError(path, "data_global_shift has a malformed row (truncated file?)") from None
    _check_frame_count(path, text, blocks["global_shift"], table[:, 0], general)
    observed = ~((table[:, 1] == NOT_OBSERVED) | (table[:, 2] == NOT_OBSERVED))
    table = table[observed]
    frames, shifts = table[:, 0].astype(int), table[:, 1:]
    _check_shifts(path, shifts, frames)
    return Trajectory(
        movie=general.get("rlnMicrographMovieName") or str(path),
        shifts_px=shifts,
        pixel_size=_positive(general.get("rlnMicrographOriginalPixelSize")),
        dose_per_frame=_positive(general.get("rlnMicrographDoseRate")),
        pre_exposure=max(0.0, _float(general.get("rlnMicrographPreExposure"), 0.0)),
        binning=_positive(general.get("rlnMicrographBinning")) or 1.0,
        source="relion_motion_star",
        frame_numbers=frames,
        metadata=str(path),
    )


def read_relion_motion_star(path: str | Path) -> Trajectory:
    """Read one RELION per-movie motion STAR (``data_general`` + ``data_global_shift``)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise InputError(path, "motion STAR file not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read motion STAR ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not a text STAR file") from None
    return parse_relion_motion_star(text, path)


def format_relion_motion_star(traj: Trajectory, image_size: tuple[int, int] = (4096, 4096)) -> str:
    """A trajectory as RELION's per-movie motion STAR text (``data_general`` +
    ``data_global_shift``), e.g. to hand MotionCor2 or CSV results to RELION."""
    general = {
        "rlnImageSizeX": image_size[0], "rlnImageSizeY": image_size[1],
        "rlnImageSizeZ": int(traj.frame_numbers[-1]) if traj.n_frames else 0,
        "rlnMicrographMovieName": quote_star_value(traj.movie),
        "rlnMicrographBinning": f"{traj.binning:.6f}",
    }
    if traj.pixel_size:
        general["rlnMicrographOriginalPixelSize"] = f"{traj.pixel_size:.6f}"
    if traj.dose_per_frame:
        general["rlnMicrographDoseRate"] = f"{traj.dose_per_frame:.6f}"
    general["rlnMicrographPreExposure"] = f"{traj.pre_exposure:.6f}"
    general["rlnMicrographStartFrame"] = int(traj.frame_numbers[0]) if traj.n_frames else 1
    general["rlnMotionModelVersion"] = 0
    lines = ["", "# version 30001", "", "data_general", ""]
    lines += [f"_{k:<40} {v}" for k, v in general.items()]
    lines += ["", "", "# version 30001", "", "data_global_shift", "", "loop_",
              f"_{FRAME_NUMBER} #1", f"_{SHIFT_X} #2", f"_{SHIFT_Y} #3"]
    lines += [f"{int(f):12d} {x:12.6f} {y:12.6f}" for f, (x, y) in zip(traj.frame_numbers, traj.shifts_px)]
    return "\n".join(lines + ["", ""])


# --------------------------------------------------------------------------- corrected_micrographs


@dataclass
class MicrographsTable:
    """A RELION micrographs STAR: rows as dicts, the optics table, the data block's name."""

    path: Path
    rows: list[dict]
    optics: pd.DataFrame | None
    block: str

    def optics_for(self, row: dict) -> dict:
        if self.optics is None or "rlnOpticsGroup" not in self.optics.columns:
            return {}
        group = str(row.get("rlnOpticsGroup", "1"))
        match = self.optics[self.optics["rlnOpticsGroup"].astype(str) == group]
        return match.iloc[0].to_dict() if len(match) else {}


def read_micrographs_table(path: str | Path) -> MicrographsTable:
    """``corrected_micrographs.star`` (or any micrographs STAR) as plain rows."""
    path = Path(path)
    blocks = read_star(path)
    optics = blocks.get("optics")
    for name, df in blocks.items():
        if name != "optics" and "rlnMicrographName" in df.columns:
            rows = [{k: _plain(v) for k, v in r.items()} for r in df.to_dict("records")]
            return MicrographsTable(path=path, rows=rows, optics=optics, block=name)
    raise InputError(path, "no data block with a rlnMicrographName column",
                     "give RELION's corrected_micrographs.star")


def _plain(value):
    """numpy / pandas scalars -> Python scalars (for JSON journals and STAR output)."""
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA:
        return None
    return value


def trajectory_from_micrograph_row(row: dict, table_path: str | Path, optics: dict | None = None,
                                   use_accumulated: bool = False) -> Trajectory:
    """The trajectory of one ``corrected_micrographs.star`` row.

    Follows ``rlnMicrographMetadata`` (relative to the project folder) to the motion STAR;
    without that column (or with ``use_accumulated``) uses ``rlnAccumMotionTotal/Early/Late``.
    When the motion STAR does not exist (a job copied without its ``Movies/*.star``, or run
    from another folder) the accumulated motion is used too, with the trajectory's
    ``warning`` set (``metadata`` keeps the missing name); without accumulated motion it is an
    error.
    """
    optics = optics or {}
    table_path = Path(table_path)
    micrograph = _str_or_none(row.get("rlnMicrographName"))
    nodw = _str_or_none(row.get("rlnMicrographNameNoDW"))
    metadata = _str_or_none(row.get("rlnMicrographMetadata"))
    where = f"{table_path} ({micrograph})"
    missing = None
    if metadata and not use_accumulated:
        resolved = resolve_relion_path(metadata, table_path)
        if resolved.is_file():
            traj = read_relion_motion_star(resolved)
            if traj.pixel_size is None:
                traj.pixel_size = _positive(optics.get("rlnMicrographOriginalPixelSize"))
        elif row.get("rlnAccumMotionTotal") in (None, ""):
            raise InputError(where, f"rlnMicrographMetadata {metadata} does not exist and the row has "
                             "no rlnAccumMotionTotal", MISSING_MOTION_FIX)
        else:
            missing = metadata
    if not (metadata and not use_accumulated) or missing:
        traj = _accumulated_trajectory(row, where, micrograph, optics)
        if missing:
            traj.warning = MISSING_MOTION_WARNING
    traj.micrograph, traj.micrograph_nodw = micrograph, nodw
    traj.row = dict(row)
    if not traj.source.startswith("relion_accumulated"):
        traj.source = "relion_corrected_micrographs"
    return traj


MISSING_MOTION_FIX = ("run from the RELION project folder (the one holding MotionCorr/), or copy the "
                      "job with its Movies/*.star motion files")
MISSING_MOTION_WARNING = (
    "motion STAR (rlnMicrographMetadata) missing: used RELION's accumulated motion "
    "(rlnAccumMotionTotal/Early/Late); rules that need the largest frame step (--rejection "
    "frame, and, or) cannot decide these movies unless their whole path is below "
    "--max-frame-shift (use --rejection movie, or " + MISSING_MOTION_FIX + ")")


def _accumulated_trajectory(row: dict, where: str, micrograph: str | None, optics: dict) -> Trajectory:
    """A trajectory holding only RELION's accumulated motion (pixels) of a micrographs row."""
    if row.get("rlnAccumMotionTotal") in (None, ""):
        raise InputError(where, "neither rlnMicrographMetadata nor rlnAccumMotionTotal given")
    values = tuple(_float(row.get(label), float("nan")) for label in ACCUM_LABELS)
    if not math.isfinite(values[0]):
        raise InputError(where, "rlnAccumMotionTotal is not a number")
    return Trajectory(
        movie=_str_or_none(row.get("rlnMicrographMovieName")) or micrograph or where,
        shifts_px=np.empty((0, 2)),
        pixel_size=_positive(optics.get("rlnMicrographOriginalPixelSize")),
        source="relion_accumulated_motion",
        accumulated_px=values,
    )


def _str_or_none(value) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text if text and text.lower() not in ("nan", "none", "<na>") else None


# --------------------------------------------------------------------------- MotionCor2


def movie_name_from_motioncor2_log(path: str | Path) -> str:
    name = Path(path).name
    for suffix in MOTIONCOR2_LOG_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def read_motioncor2_log(path: str | Path) -> Trajectory:
    """MotionCor2 full-frame log: ``#`` header lines, then ``frame shift_x shift_y`` rows."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError(path, "MotionCor2 log not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read MotionCor2 log ({exc.strerror})") from None
    rows = []
    pixel_size = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#") or not (stripped[0].isdigit() or stripped[0] in "+-."):
            low = stripped.lower()
            if "pixel size" in low:
                pixel_size = _positive(low.split(":")[-1].split()[0] if ":" in low else None)
            if rows:
                raise InputError(path, f"line {number}: text after the shift table ({stripped[:40]!r})")
            continue
        parts = stripped.split()
        try:
            rows.append([float(parts[0]), float(parts[1]), float(parts[2])])
        except (ValueError, IndexError):
            raise InputError(path, f"line {number}: expected 'frame shift_x shift_y'") from None
    if not rows:
        raise InputError(path, "no shift rows (not a MotionCor2 full-frame log)")
    table = np.array(rows)
    frames = table[:, 0].astype(int)
    _check_shifts(path, table[:, 1:], frames)
    return Trajectory(movie=movie_name_from_motioncor2_log(path), shifts_px=table[:, 1:],
                      pixel_size=pixel_size, source="motioncor2_log", frame_numbers=frames,
                      metadata=str(path))


# --------------------------------------------------------------------------- CSV


CSV_COLUMNS = ("movie", "frame", "x", "y")


def read_motion_csv(path: str | Path) -> list[tuple[str, Trajectory | InputError]]:
    """A CSV of ``movie, frame, x, y`` rows (pixels): ``(movie, trajectory)`` per movie, in
    file order. A movie with bad values comes with an :class:`InputError` instead (the others
    still count); a file without the required columns raises.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except FileNotFoundError:
        raise InputError(path, "CSV not found") from None
    except Exception as exc:  # pandas raises many parser errors
        raise InputError(path, f"not a readable CSV ({type(exc).__name__}: {exc})") from None
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}",
                         "the CSV needs movie, frame, x, y (pixels)")
    out: list[tuple[str, Trajectory | InputError]] = []
    for movie, group in df.groupby("movie", sort=False):
        where = f"{path} (movie {movie})"
        try:
            group = group.sort_values("frame")
            frames = pd.to_numeric(group["frame"], errors="coerce").to_numpy()
            shifts = group[["x", "y"]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
            if not np.isfinite(frames).all():
                raise InputError(where, "non-numeric frame number")
            _check_shifts(where, shifts, frames.astype(int))
            first = group.iloc[0]
            out.append((str(movie), Trajectory(
                movie=str(movie), shifts_px=shifts,
                pixel_size=_positive(first.get("pixel_size")),
                dose_per_frame=_positive(first.get("dose_per_frame")),
                pre_exposure=max(0.0, _float(first.get("pre_exposure"), 0.0)),
                source="csv", micrograph=_str_or_none(first.get("micrograph")),
                frame_numbers=frames.astype(int), metadata=str(path),
            )))
        except InputError as exc:
            out.append((str(movie), exc))
    return out


# --------------------------------------------------------------------------- Scipion


def _csv_floats(text) -> np.ndarray:
    text = "" if text is None else str(text).strip().strip("[]")
    if not text:
        return np.empty(0)
    return np.array([float(v) for v in text.split(",")], dtype=float)


def read_scipion_movies(path: str | Path) -> list[tuple[str, Trajectory | InputError]]:
    """Aligned movies of a Scipion set ``.sqlite`` (shifts in pixels of ``_samplingRate``):
    ``(movie, trajectory or InputError)`` per movie, in set order."""
    path = Path(path)
    objects, props = read_scipion_set(path)
    for needed in ("_filename", "_alignment._xshifts", "_alignment._yshifts"):
        if needed not in objects.columns:
            raise InputError(path, f"Scipion set has no {needed} attribute",
                             "give the output movies of an alignment protocol")
    set_pixel = _positive(props.get("_samplingRate"))
    set_dose = _positive(props.get("_acquisition._dosePerFrame"))
    set_pre = _float(props.get("_acquisition._doseInitial"), 0.0)
    out: list[tuple[str, Trajectory | InputError]] = []
    for k, obj in enumerate(objects.to_dict("records")):
        movie, problem = scipion_filename(obj)
        where = f"{path} (movie {movie})"
        if problem:
            out.append((movie or f"{path}::row {k + 1}", InputError(path, problem)))
            continue
        try:
            try:
                xs, ys = _csv_floats(obj["_alignment._xshifts"]), _csv_floats(obj["_alignment._yshifts"])
            except ValueError:
                raise InputError(where, "unreadable _alignment shift list") from None
            if len(xs) != len(ys):
                raise InputError(where, f"{len(xs)} x shifts but {len(ys)} y shifts")
            first = int(_float(obj.get("_alignment._first"), 1.0)) or 1
            frames = np.arange(first, first + len(xs))
            shifts = np.column_stack([xs, ys])
            _check_shifts(where, shifts, frames)
            out.append((movie, Trajectory(
                movie=movie, shifts_px=shifts,
                pixel_size=_positive(obj.get("_samplingRate")) or set_pixel,
                dose_per_frame=_positive(obj.get("_acquisition._dosePerFrame")) or set_dose,
                pre_exposure=max(0.0, _float(obj.get("_acquisition._doseInitial"), set_pre)),
                source="scipion", micrograph=_str_or_none(obj.get("_micName")),
                frame_numbers=frames, metadata=str(path),
                row={"rlnMicrographMovieName": movie},
            )))
        except InputError as exc:
            out.append((movie, exc))
    return out


# --------------------------------------------------------------------------- detection


def detect_format(path: str | Path) -> str:
    """``relion_motion_star`` | ``relion_micrographs`` | ``motioncor2_log`` | ``csv`` |
    ``scipion`` (by name, then by the first bytes of a STAR file)."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".sqlite"):
        return "scipion"
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".log"):
        return "motioncor2_log"
    if name.endswith(".star"):
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096)
        except OSError as exc:
            raise InputError(path, f"cannot read ({exc.strerror})") from None
        if b"data_general" in head or b"data_global_shift" in head:
            return "relion_motion_star"
        if b"_rlnMicrographName" in head or b"data_micrographs" in head:
            return "relion_micrographs"
        return "relion_motion_star"  # parsed as such; a wrong file fails with a clear reason
    raise InputError(path, "unknown motion file type",
                     "give RELION .star, MotionCor2 *-Full.log, .csv or Scipion .sqlite")


__all__ = [
    "Trajectory", "MicrographsTable", "NOT_OBSERVED", "parse_relion_motion_star",
    "read_relion_motion_star", "format_relion_motion_star", "read_micrographs_table", "trajectory_from_micrograph_row",
    "read_motioncor2_log", "movie_name_from_motioncor2_log", "read_motion_csv",
    "read_scipion_movies", "detect_format",
]
