"""`swarmlens status` exit codes a script can use: 0 running and healthy, 1 running with a problem,
3 not running."""

from __future__ import annotations

import argparse
import json
import os

from swarmlens.commands import status as status_command


def test_exit_codes(tmp_path, capsys):
    args = argparse.Namespace(data_dir=str(tmp_path), json=True)
    assert status_command.run(args) == 3  # nothing ever ran here
    with open(tmp_path / "up-state.json", "w") as f:
        json.dump({"state": "stopped", "pid": os.getpid(), "urls": {}, "children": []}, f)
    assert status_command.run(args) == 3
    with open(tmp_path / "up-state.json", "w") as f:
        json.dump({"state": "running", "pid": os.getpid(), "urls": {}, "children": []}, f)
    assert status_command.run(args) == 0
    with open(tmp_path / "up-state.json", "w") as f:
        json.dump({"state": "running", "pid": os.getpid(), "urls": {},
                   "children": [{"name": "reporter", "pid": 2 ** 22 + 7, "running": True}]}, f)
    assert status_command.run(args) == 1  # its reporter is gone
    assert "reporter is not running" in capsys.readouterr().out
    with open(tmp_path / "up-state.json", "w") as f:
        json.dump({"state": "running", "pid": 2 ** 22 + 7, "urls": {}, "children": []}, f)
    assert status_command.run(args) == 3  # up itself ended without stopping
