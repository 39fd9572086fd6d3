"""The one shape of the cryo-EM tools (dose, maxshift, clean).

    discover items -> measure (pure per item, journaled, keyed by the parameters that
    change a measurement) -> decide (pure, cheap, re-run on every update, on a threshold
    change and on a manual override) -> outputs (table, accepted / discarded / failed
    STAR sets, plots, report)

A run lives in its output folder ``OUT``::

    OUT/.scopeline/<tool>_<digest>.jsonl   the journal: one measurement record per item;
                                           <digest> hashes the measurement parameters, so
                                           changing one measures again, changing a
                                           threshold only decides again
    OUT/.scopeline/run.json                tool, every parameter, the run's context
    OUT/.scopeline/overrides.json          manual decisions {item key: accepted|discarded}
    OUT/.scopeline/lock                    the process running on OUT (one at a time)

Every output is a pure function of (journal records, parameters, overrides). The browser UI
and scripts use :func:`open_run`: :meth:`Run.records` (live state, also while the run goes
on), :meth:`Run.decide` (decisions for other thresholds, nothing written),
:meth:`Run.redecide` (apply new thresholds: outputs rewritten, nothing measured again) and
:meth:`Run.set_override`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from pydantic import BaseModel

from .errors import ConfigError, InputError
from .io.atomic import ensure_output_dir, write_json
from .lock import read_lock, run_lock
from .parallel import map_items
from .stream import Item, Journal, StreamOptions, run_stream

STATE_DIR = ".scopeline"
RUN_FILE = "run.json"
OVERRIDES_FILE = "overrides.json"
DECISIONS = ("accepted", "discarded")
TOOL_MODULES = {  # tool name -> module defining ``TOOL`` (imported lazily: no cycles)
    "dose": "scopeline.cryoem.dose_analysis",
    "maxshift": "scopeline.cryoem.maxshift_run",
    "clean": "scopeline.cryoem.cleaner.clean",
}


@dataclass(frozen=True)
class ToolSpec:
    """What the shared machinery needs to know about a tool.

    Attributes
    ----------
    name : str
        The command's name (``dose``, ``maxshift``, ``clean``).
    params_model : type of pydantic.BaseModel
        The tool's parameters.
    measure_fields : tuple of str
        Parameters that change a measurement; the others only change decisions.
    outputs : callable
        ``outputs(out_dir, params, context, warn)`` -> a :class:`ToolOutputs`.
    measurement_identity : callable, optional
        ``measurement_identity(params)`` -> dict: what else changes a measurement (the
        cleaner: the content of its weights file), keyed into the journal with the fields.
    """

    name: str
    params_model: type
    measure_fields: tuple[str, ...]
    outputs: Callable[..., "ToolOutputs"]
    measurement_identity: Callable[[BaseModel], dict] | None = None

    def journal_key(self, params: BaseModel) -> str:
        """:func:`measurement_key` of ``params`` for this tool."""
        identity = self.measurement_identity(params) if self.measurement_identity else None
        return measurement_key(params, self.measure_fields, identity)


def tool_spec(name: str) -> ToolSpec:
    """The :class:`ToolSpec` of a tool by name."""
    if name not in TOOL_MODULES:
        raise ConfigError(None, f"unknown tool {name!r}", "give one of " + ", ".join(TOOL_MODULES))
    return importlib.import_module(TOOL_MODULES[name]).TOOL


# --------------------------------------------------------------------------- journal


def measurement_key(params: BaseModel, fields: Sequence[str], identity: dict | None = None) -> str:
    """Digest of the parameters that change a measurement and of ``identity`` (what else
    does, e.g. the content of the cleaner's weights file: new shipped weights never reuse
    old scores) (10 hex digits)."""
    values = params.model_dump(mode="json")
    keyed = {k: values.get(k) for k in sorted(fields)}
    keyed.update(identity or {})
    measuring = json.dumps(keyed, sort_keys=True, default=str)
    return hashlib.sha1(measuring.encode()).hexdigest()[:10]


def measurement_journal(out_dir: str | Path, spec: ToolSpec, params: BaseModel) -> Journal:
    """The journal of ``spec`` runs in ``out_dir`` that measure with these parameters."""
    return Journal(Path(out_dir) / STATE_DIR / f"{spec.name}_{spec.journal_key(params)}.jsonl")


def file_signature(paths: Iterable[str | Path | None]) -> list:
    """``[size, mtime_ns]`` of each file (None for a missing one): what tells a replaced
    or grown file from the one measured."""
    sig = []
    for p in paths:
        if p is None:
            continue
        try:
            st = os.stat(p)
            sig.append([st.st_size, st.st_mtime_ns])
        except (OSError, ValueError):  # missing, or a name no file can have (NUL bytes)
            sig.append(None)
    return sig


def retry_rule(item_files: Callable[[Item], Sequence]) -> Callable[[dict, Item], bool]:
    """The one refresh rule: an item is measured again when its record is ``failed`` and
    its file(s) changed (size or modification time) since -- or the record predates
    signatures. A measured item is never measured again with the same parameters."""

    def retry(record: dict, item: Item) -> bool:
        if record.get("status") != "failed":
            return False
        if record.get("input_error"):  # the input itself was bad: retry once it is fixed
            return not item.meta.get("error")
        before = record.get("file_sig")
        return before is None or before != file_signature(item_files(item))

    return retry


# --------------------------------------------------------------------------- overrides


def _state(out_dir: str | Path, name: str) -> Path:
    return Path(out_dir) / STATE_DIR / name


def load_overrides(out_dir: str | Path) -> dict[str, str]:
    """Manual decisions of a run: ``{item key: "accepted" | "discarded"}``."""
    path = _state(out_dir, OVERRIDES_FILE)
    if not path.is_file():
        return {}
    try:
        return {k: v for k, v in json.loads(path.read_text(encoding="utf-8")).items() if v in DECISIONS}
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}


def apply_overrides(rows: list[dict], overrides: dict[str, str]) -> list[dict]:
    """Rows with manual decisions applied: an override beats the rule for a measured item
    (``status`` becomes the override, ``rule_status`` keeps the rule's, ``override`` is
    True); a failed item stays failed (nothing was measured)."""
    if not overrides:
        return rows
    out = []
    for r in rows:
        wanted = overrides.get(r.get("key"))
        if wanted and r.get("status") in (*DECISIONS, "pending"):
            r = {**r, "rule_status": r["status"], "status": wanted, "override": True}
        out.append(r)
    return out


# --------------------------------------------------------------------------- outputs


class ToolOutputs:
    """Base of each tool's outputs: ``update(records, closed)`` decides and writes.

    Subclasses implement :meth:`decide` (pure: records -> rows with a ``status``) and
    :meth:`write` (rows -> files, summary). Before each update the decision parameters and
    overrides are re-read from ``OUT/.scopeline`` when they changed, so a threshold change
    or an override made while the run goes on applies at its next update.
    """

    tool = ""

    def __init__(self, out_dir: str | Path, params: BaseModel, context: dict | None = None,
                 warn: Callable[[str], None] = lambda message: None):
        self.out_dir, self.params, self.context, self.warn = Path(out_dir), params, context or {}, warn
        self.overrides: dict[str, str] = {}
        self._seen: dict[str, int | None] = {}

    def decide(self, records: list[dict], closed: bool) -> list[dict]:  # pragma: no cover
        raise NotImplementedError

    def write(self, rows: list[dict], records: list[dict], closed: bool) -> dict | None:  # pragma: no cover
        raise NotImplementedError

    def rows(self, records: list[dict], closed: bool = True) -> list[dict]:
        """Decided rows, overrides applied (nothing written)."""
        return apply_overrides(self.decide(records, closed), self.overrides)

    def update(self, records: list[dict], closed: bool = False) -> dict | None:
        self.refresh()
        return self.write(self.rows(records, closed), records, closed)

    def refresh(self) -> None:
        """Pick up decision parameters and overrides changed by :class:`Run` meanwhile."""
        for name in (RUN_FILE, OVERRIDES_FILE):
            path = _state(self.out_dir, name)
            try:
                stamp = path.stat().st_mtime_ns
            except OSError:
                stamp = None
            if name in self._seen and self._seen[name] == stamp:
                continue
            self._seen[name] = stamp
            if name == OVERRIDES_FILE:
                self.overrides = load_overrides(self.out_dir)
            elif stamp is not None:
                state = _read_run_state(self.out_dir)
                spec = tool_spec(self.tool)
                if state and state.get("tool") == self.tool:
                    saved = spec.params_model.model_validate(state["params"])
                    decision = {k: getattr(saved, k) for k in type(saved).model_fields
                                if k not in spec.measure_fields}
                    self.params = self.params.model_copy(update=decision)


# --------------------------------------------------------------------------- running


def _read_run_state(out_dir: str | Path) -> dict | None:
    path = _state(out_dir, RUN_FILE)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _write_run_state(out_dir: Path, spec: ToolSpec, params: BaseModel, context: dict, journal: Journal) -> None:
    write_json(_state(out_dir, RUN_FILE), {
        "tool": spec.name, "params": params.model_dump(mode="json"), "context": context,
        "journal": journal.path.name, "measure_fields": list(spec.measure_fields)})


def run_tool(spec: ToolSpec, out_dir: str | Path, params: BaseModel, *,
             poll: Callable[[], list[Item]],
             measure: Callable[[list[Item], Callable], list[dict]],
             item_files: Callable[[Item], Sequence],
             context: dict | None = None,
             stream: StreamOptions | None = None,
             scheduler: str | None = None,
             workers: int | None = None,
             warn: Callable[[str], None] = lambda message: None,
             outputs: "ToolOutputs | None" = None,
             description: str | None = None,
             after: Callable[[list[dict], Journal], list[dict]] | None = None) -> dict:
    """Run a tool over its input: the shared orchestration of every cryo-EM tool.

    Parameters
    ----------
    spec : ToolSpec
        The tool.
    out_dir : path
        Output folder; locked for the run (:func:`scopeline.lock.run_lock`).
    params : pydantic.BaseModel
        The tool's parameters.
    poll : callable
        ``poll() -> list[Item]``: the input's items now (called again while watching).
    measure : callable
        ``measure(batch, mapper) -> records``: one journal record per item (never raises;
        a bad item is a ``failed`` record). ``mapper(func, args_list)`` runs on Dask or here.
    item_files : callable
        ``item_files(item) -> paths`` whose size and time decide whether a failed item is
        measured again (:func:`retry_rule`).
    context : dict, optional
        What the outputs need besides the records (JSON-able), saved in ``run.json``.
    stream : StreamOptions, optional
        Batches, watching; ``stream.file_age`` is for ``poll``.
    scheduler, workers :
        Dask scheduler address, or number of local worker processes (0 = this process).
    warn : callable
        Receives one-line warnings while the run goes on.
    outputs : ToolOutputs, optional
        The outputs writer (default ``spec.outputs(out_dir, params, context, warn)``).
    after : callable, optional
        ``after(records, journal) -> records`` once the stream is closed, before the last update.

    Returns
    -------
    dict
        The run's summary (also in ``OUT/summary.json``).
    """
    out = ensure_output_dir(out_dir)
    stream = stream or StreamOptions()
    context = context or {}
    with run_lock(out, spec.name):
        journal = measurement_journal(out, spec, params)
        _write_run_state(out, spec, params, context, journal)
        writer = outputs or spec.outputs(out, params, context, warn)

        def process(batch: list[Item], mapper) -> list[dict]:
            signatures = [file_signature(item_files(it)) for it in batch]
            records = measure(batch, mapper)
            for rec, sig in zip(records, signatures):
                rec["file_sig"] = sig
            return records

        with map_items(scheduler=scheduler, workers=workers) as mapper:
            records = run_stream(poll, lambda batch: process(batch, mapper), journal, stream,
                                 writer.update, description=description or spec.name,
                                 retry=retry_rule(item_files))
        if after is not None:
            records = after(records, journal)
        return writer.update(records, closed=True)


# --------------------------------------------------------------------------- the run API


class Run:
    """A tool's run in an output folder, for scripts and the browser UI.

    Parameters
    ----------
    out_dir : path
        Output folder of a ``scopeline dose | maxshift | clean`` run (finished or running).

    Attributes
    ----------
    tool : str
        ``dose``, ``maxshift`` or ``clean``.
    params : pydantic.BaseModel
        The parameters of the run (decision parameters as last set).
    context : dict
        What the run's outputs need besides the records.

    Examples
    --------
    >>> run = open_run("dose_out")                       # doctest: +SKIP
    >>> rows = run.decide(max_diff=3)                     # what 3 % would give  # doctest: +SKIP
    >>> run.set_override(rows[0]["key"], "discarded")     # doctest: +SKIP
    >>> run.redecide(max_diff=3)                          # outputs rewritten  # doctest: +SKIP
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        state = _read_run_state(self.out_dir)
        if not state:
            raise InputError(self.out_dir, "not a scopeline run folder (.scopeline/run.json missing)",
                             "give the --out folder of a dose, maxshift or clean run")
        self.spec = tool_spec(state["tool"])
        self.tool = self.spec.name
        self.params = self.spec.params_model.model_validate(state["params"])
        self.context = state.get("context") or {}
        self.journal = Journal(self.out_dir / STATE_DIR / state["journal"])

    @property
    def running(self) -> dict | None:
        """The process running on the folder now (``pid``, ``host``, ``tool``, ``since``), or None."""
        return read_lock(self.out_dir)

    def records(self) -> list[dict]:
        """The measurement records so far, in input order (the live state of a running run)."""
        return self.journal.load()

    def overrides(self) -> dict[str, str]:
        """Manual decisions ``{item key: accepted | discarded}``."""
        return load_overrides(self.out_dir)

    def set_override(self, key: str, status: str | None) -> None:
        """Accept or discard one item whatever the rule (``None`` removes the override).

        Stored in ``OUT/.scopeline/overrides.json``; a running run applies it at its next
        update, a finished one at the next :meth:`redecide`.
        """
        if status not in (*DECISIONS, None):
            raise ConfigError(None, f"override {status!r} is not allowed", "give accepted, discarded or None")
        current = self.overrides()
        if status is None:
            current.pop(key, None)
        else:
            current[key] = status
        write_json(_state(self.out_dir, OVERRIDES_FILE), current)

    def _params_with(self, thresholds: dict) -> BaseModel:
        changed = sorted(k for k in thresholds if k in self.spec.measure_fields
                         and thresholds[k] != getattr(self.params, k))
        if changed:
            raise ConfigError(self.out_dir, f"{', '.join(changed)} change(s) the measurements, not only the decision",
                              f"run `scopeline {self.tool}` again with the new value")
        return self.spec.params_model.model_validate({**self.params.model_dump(), **thresholds})

    def _outputs(self, params: BaseModel, warn=lambda message: None) -> ToolOutputs:
        writer = self.spec.outputs(self.out_dir, params, self.context, warn)
        writer.overrides = self.overrides()
        return writer

    def decide(self, **thresholds) -> list[dict]:
        """Decided rows for these decision parameters (default: the run's), overrides
        applied; nothing is measured or written."""
        return self._outputs(self._params_with(thresholds)).rows(self.records(), closed=True)

    def redecide(self, warn: Callable[[str], None] = lambda message: None, **thresholds) -> dict | None:
        """Apply new decision parameters (thresholds, rule...) and the overrides.

        The parameters are saved with the run. A finished run's outputs are rewritten now
        (nothing is measured again) and its summary returned; a running run applies them
        at its next update (returns None).
        """
        params = self._params_with(thresholds)
        state = _read_run_state(self.out_dir) or {}
        state["params"] = params.model_dump(mode="json")
        write_json(_state(self.out_dir, RUN_FILE), state)
        self.params = params
        if self.running:
            return None
        with run_lock(self.out_dir, self.tool):
            writer = self._outputs(params, warn)
            return writer.write(writer.rows(self.records(), closed=True), self.records(), closed=True)


def open_run(out_dir: str | Path) -> Run:
    """The :class:`Run` in an output folder."""
    return Run(out_dir)
