"""`swarmlens status` names a damaged write-ahead log and a disk below its free-space reserve, from
what the receiver writes about itself, as a problem (exit 1)."""

from __future__ import annotations

import json
import os
import time


def test_status_names_quarantined_records_and_a_disk_below_its_reserve(tmp_path, capsys):
    import argparse

    from swarmlens.commands import status as status_command

    (tmp_path / "up-state.json").write_text(json.dumps({"pid": os.getpid(), "state": "running", "children": [],
                                                        "urls": {}}))
    (tmp_path / "ingest").mkdir()
    quarantine = str(tmp_path / "ingest" / "quarantine")
    (tmp_path / "ingest" / "status.json").write_text(json.dumps({
        "pid": os.getpid(), "updated_at": time.time(), "counts": {"spans_accepted": 10}, "backlog_segments": 0,
        "quarantine": {"records": 3, "bytes": 1234, "torn_records": 1, "segments_cut_short": 1,
                       "directory": quarantine},
        "wal_write_failures": 18, "wal_refused_low_space": 2, "free_bytes": 1000, "min_free_bytes": 5000}))
    facts = status_command.gather(str(tmp_path))
    assert any("3 record(s), 1234 byte(s)" in p and quarantine in p and "1 segment(s) cut short" in p
               for p in facts["problems"]), facts["problems"]
    assert any("1000 bytes free" in p for p in facts["problems"])
    assert facts["ingest"]["quarantine"]["records"] == 3
    code = status_command.run(argparse.Namespace(data_dir=str(tmp_path), json=False))
    out = capsys.readouterr().out
    assert code == 1 and "quarantine  3 damaged record(s), 1234 bytes; 1 cut short by a crash" in out
    assert "18 write(s) refused by the disk, 2 request(s) refused below the free-space reserve" in out


def test_a_crash_cut_record_alone_is_not_a_problem(tmp_path):
    from swarmlens.commands import status as status_command

    (tmp_path / "up-state.json").write_text(json.dumps({"pid": os.getpid(), "state": "running", "children": [],
                                                        "urls": {}}))
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / "status.json").write_text(json.dumps({
        "pid": os.getpid(), "updated_at": time.time(), "counts": {}, "backlog_segments": 0,
        "quarantine": {"records": 0, "bytes": 0, "torn_records": 1, "segments_cut_short": 0, "directory": "q"}}))
    assert status_command.gather(str(tmp_path))["problems"] == []
