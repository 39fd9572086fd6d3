"""The streaming layer: every item exactly once, across kills and restarts."""

import json

from scopeline.stream import Item, Journal, StreamOptions, run_stream


def _process(batch):
    return [{"key": it.key, "status": "ok"} for it in batch]


def test_each_item_processed_once_in_order(tmp_path):
    journal = Journal.in_dir(tmp_path)
    items = [Item(str(i)) for i in range(7)]
    seen = []
    records = run_stream(lambda: items, _process, journal, StreamOptions(batch_size=3),
                         lambda recs: seen.append(len(recs)))
    assert [r["key"] for r in records] == [str(i) for i in range(7)]
    assert seen == [0, 3, 6, 7]
    # a second run finds everything done
    calls = []
    again = run_stream(lambda: items, lambda b: calls.append(b) or _process(b), journal,
                       StreamOptions(), lambda recs: None)
    assert calls == [] and len(again) == 7


def test_torn_last_line_is_redone(tmp_path):
    journal = Journal.in_dir(tmp_path)
    journal.append([{"key": "a", "status": "ok"}])
    with open(journal.path, "a") as fh:
        fh.write('{"key": "b", "sta')  # killed mid-write
    assert [r["key"] for r in journal.load()] == ["a"]
    records = run_stream(lambda: [Item("a"), Item("b")], _process, journal, StreamOptions(),
                         lambda recs: None)
    assert [r["key"] for r in records] == ["a", "b"]
    lines = [json.loads(line) for line in journal.path.read_text().splitlines() if line.startswith('{"key": "b", "status')]
    assert len(lines) == 1


def test_failing_batch_is_recorded_not_lost(tmp_path):
    def boom(batch):
        raise RuntimeError("worker died")

    records = run_stream(lambda: [Item("x")], boom, Journal.in_dir(tmp_path), StreamOptions(),
                         lambda recs: None)
    assert records[0]["status"] == "failed" and "worker died" in records[0]["error"]


def test_watch_picks_up_new_items_until_idle(tmp_path):
    arrivals = [[Item("1")], [Item("1"), Item("2")], [Item("1"), Item("2")], [Item("1"), Item("2"), Item("3")]]
    polls = iter(arrivals + [arrivals[-1]] * 100)
    now = [0.0]
    records = run_stream(lambda: next(polls), _process, Journal.in_dir(tmp_path),
                         StreamOptions(watch=True, idle_timeout=3.0, poll_interval=1.0),
                         lambda recs: None, sleep=lambda s: now.__setitem__(0, now[0] + s),
                         clock=lambda: now[0])
    assert [r["key"] for r in records] == ["1", "2", "3"]


def test_watch_stops_on_stop_file_after_a_last_pass(tmp_path):
    stop = tmp_path / "STOP"
    state = {"n": 0}

    def poll():
        state["n"] += 1
        if state["n"] == 2:
            stop.touch()
        return [Item(str(i)) for i in range(state["n"])]

    records = run_stream(poll, _process, Journal.in_dir(tmp_path / "o"),
                         StreamOptions(watch=True, idle_timeout=1e9, stop_file=stop, poll_interval=0),
                         lambda recs: None, sleep=lambda s: None)
    assert [r["key"] for r in records] == ["0", "1", "2"]
