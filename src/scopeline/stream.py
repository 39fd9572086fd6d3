"""Incremental processing shared by the cryo-EM tools.

The input (a folder, a glob, a STAR file...) is polled for items; items not yet done are
processed in batches; each batch's records are appended to a journal in the output folder
(``OUT/.scopeline/journal.jsonl``, one JSON object per line, fsync'd); after each batch the
tool regenerates its outputs from the full, ordered record list. Outputs are therefore a pure
function of the journal: a run killed at any point and restarted with the same command skips
what the journal holds and never duplicates or loses an item.

With ``watch=True`` the input is polled until it is closed: no new item for
``idle_timeout`` seconds, or ``stop_file`` exists.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .errors import ConfigError, WorkersLostError, describe
from .progress import progress_bar

JOURNAL_NAME = "journal.jsonl"


@dataclass(frozen=True)
class Item:
    """One input item.

    ``key`` is unique and stable across polls (the resolved path); ``row`` is the item's
    input row as STAR labels (written back unchanged in the output sets); ``meta`` holds
    what the input knew about it (pixel size, dose per frame...).
    """

    key: str
    row: dict = field(default_factory=dict, compare=False, hash=False)
    meta: dict = field(default_factory=dict, compare=False, hash=False)


DEFAULT_MIN_FILE_AGE_S = 10.0  # --min-file-age with --watch: files younger than this are still being written


@dataclass
class StreamOptions:
    """How a tool goes through its input.

    Parameters
    ----------
    watch : bool
        Keep polling the input for new items until it is closed.
    idle_timeout : float
        With ``watch``: the input is closed after this many seconds without a new item (s, >= 0).
    stop_file : Path, optional
        With ``watch``: the input is closed once this file exists.
    poll_interval : float
        With ``watch``: seconds between polls (>= 0).
    batch_size : int
        Items per processing batch (>= 1).
    min_file_age : float, optional
        Files modified less than this many seconds ago are taken as still being written and
        left for a later poll (>= 0). Default: ``DEFAULT_MIN_FILE_AGE_S`` when watching, else 0.
    """

    watch: bool = False
    idle_timeout: float = 60.0
    stop_file: Path | None = None
    poll_interval: float = 5.0
    batch_size: int = 16
    min_file_age: float | None = None

    def __post_init__(self) -> None:
        checks = [("--batch-size", self.batch_size, 1, "a whole number >= 1"),
                  ("--idle-timeout", self.idle_timeout, 0, "seconds >= 0"),
                  ("--min-file-age", 0 if self.min_file_age is None else self.min_file_age, 0, "seconds >= 0")]
        for option, value, low, allowed in checks:
            if value is None or value < low or (option == "--batch-size" and int(value) != value):
                raise ConfigError(None, f"{option} {value} is not allowed", f"give {allowed}")
        if not self.poll_interval >= 0:
            raise ConfigError(None, f"--poll-interval {self.poll_interval} is not allowed", "give seconds >= 0")

    @property
    def file_age(self) -> float:
        """The minimum file age in effect (s)."""
        if self.min_file_age is not None:
            return float(self.min_file_age)
        return DEFAULT_MIN_FILE_AGE_S if self.watch else 0.0


class Journal:
    """Append-only record of processed items; the last record for a key wins."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def in_dir(cls, out_dir: str | Path) -> "Journal":
        return cls(Path(out_dir) / ".scopeline" / JOURNAL_NAME)

    def load(self) -> list[dict]:
        """Records in the order first processed (a torn last line is ignored)."""
        if not self.path.exists():
            return []
        by_key: dict[str, dict] = {}
        with open(self.path, "r", encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # torn write from a killed run: that item is simply redone
                by_key[record["key"]] = record if record["key"] not in by_key else {
                    **by_key[record["key"]], **record}
        return list(by_key.values())

    def append(self, records: Iterable[dict]) -> None:
        from .io.atomic import make_dirs, output_errors

        make_dirs(self.path.parent)
        text = "".join(json.dumps(r, default=_json_default) + "\n" for r in records)
        if not text:
            return
        with output_errors(self.path), open(self.path, "a", encoding="utf-8") as handle:
            # A torn line from a previous kill must not glue onto this one.
            if handle.tell() > 0 and not _ends_with_newline(self.path):
                handle.write("\n")
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def failed_record(item: Item, exc: BaseException) -> dict:
    """The record of an item whose processing raised."""
    return {"key": item.key, "status": "failed", "error": describe(exc, item.key)}


def input_failed_record(item: Item) -> dict:
    """The record of an item the input already marks as bad (``meta["error"]``, e.g. a Scipion
    row without a usable file name): failed with that reason, never processed."""
    return {"key": item.key, "status": "failed", "error": item.meta["error"], "row": item.row,
            "input_error": True, **item.meta.get("record", {})}


def _process_batch(process: Callable[[list[Item]], list[dict]], batch: list[Item]) -> list[dict]:
    """``process`` on the batch's good items; items with ``meta["error"]`` are failed records
    in their place (input order kept)."""
    bad = {it.key: input_failed_record(it) for it in batch if it.meta.get("error")}
    good = [it for it in batch if it.key not in bad]
    done = iter(process(good) if good else [])
    return [bad[it.key] if it.key in bad else next(done) for it in batch]


def _batches(items: list[Item], size: int) -> Iterable[list[Item]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def run_stream(
    poll: Callable[[], list[Item]],
    process: Callable[[list[Item]], list[dict]],
    journal: Journal,
    options: StreamOptions,
    on_update: Callable[[list[dict]], None],
    description: str = "processing",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    retry: Callable[[dict, Item], bool] | None = None,
) -> list[dict]:
    """Process every item ``poll`` returns once; return all records in order.

    ``process`` receives a batch and returns one record per item (``key``, ``status``...);
    it should turn per-item problems into ``failed`` records itself. If it raises anyway,
    the whole batch is recorded as failed rather than lost (except
    :class:`~scopeline.errors.WorkersLostError`, which stops the run).
    ``retry(record, item)`` says whether an item already recorded is processed again (a
    failed item whose file changed); its new record replaces the old one in place.
    """
    records = journal.load()
    done = {r["key"] for r in records}
    position = {r["key"]: i for i, r in enumerate(records)}
    on_update(records)
    last_new = clock()
    with progress_bar(None, description) as bar:
        while True:
            # Look for the stop file before polling, so items that arrived before it
            # appeared are still processed in this last pass.
            stop_seen = options.stop_file is not None and Path(options.stop_file).exists()
            items = poll()
            todo = [it for it in items if it.key not in done
                     or (retry is not None and retry(records[position[it.key]], it))]
            todo = list({it.key: it for it in todo}.values())  # a key listed twice runs once
            bar.update_total(len(done) + len(todo))
            for batch in _batches(todo, options.batch_size):
                try:
                    new = _process_batch(process, batch)
                except WorkersLostError:
                    raise
                except Exception as exc:  # noqa: BLE001 - recorded, never dropped
                    new = [failed_record(it, exc) for it in batch]
                journal.append(new)
                for r in new:
                    if r["key"] in position:
                        records[position[r["key"]]] = r
                    else:
                        position[r["key"]] = len(records)
                        records.append(r)
                done.update(r["key"] for r in new)
                on_update(records)
                bar.advance(len(batch))
            if todo:
                last_new = clock()
            if not options.watch or stop_seen:
                break
            if clock() - last_new >= options.idle_timeout:
                break
            sleep(options.poll_interval)
    return records
