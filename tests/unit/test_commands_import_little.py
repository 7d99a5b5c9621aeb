"""`swarmlens` imports only the chosen subcommand's module: the help, the version and `status` stay
light (they once loaded the demo's openai client, 1,316 modules), and `up`'s children `clickhouse`
and `ingest` start without Flask or the demo. Each case runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("flask", "openai", "swarm", "chdb")
PROBE = """
import contextlib, io, json, sys
from swarmlens.commands.dispatch import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "output": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def _run(*argv: str, code: str = PROBE) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["status", "--help"], ["status", "--data-dir", "{tmp}"]])
def test_help_version_and_status_load_under_200_modules(argv, tmp_path):
    seen = _run(*[a.format(tmp=tmp_path) for a in argv])
    loaded = seen["modules"]
    assert len(loaded) < 200, f"{len(loaded)} modules: {loaded}"
    assert not [m for m in loaded if m.split(".")[0] in HEAVY]
    if argv == ["--help"]:
        assert seen["code"] == 0 and "demo-agents" in seen["output"] and "status" in seen["output"]
    if argv[:2] == ["status", "--data-dir"]:
        assert seen["code"] == 3 and "no `swarmlens up` has run" in seen["output"]  # nothing ran there


@pytest.mark.parametrize("command, runs", [("clickhouse", "swarmlens.embedded.server"),
                                           ("ingest", "swarmlens.ingest.server")])
def test_up_children_import_neither_flask_nor_openai(command, runs):
    """The command's module and the server its run() starts."""
    code = ("import json, sys\n"
            "from swarmlens.commands.dispatch import build_parser\n"
            f"build_parser({command!r}).parse_args([{command!r}])\n"
            f"import swarmlens.commands.{command}, {runs}\n"
            "print(json.dumps({'modules': sorted(sys.modules)}))\n")
    loaded = _run(code=code)["modules"]
    assert f"swarmlens.commands.{command}" in loaded and runs in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("flask", "openai", "swarm")]


@pytest.mark.parametrize("argv", [["demo", "--tasks", "1"], ["up", "--demo", "--data-dir", "{tmp}"],
                                  ["demo-agents", "--tasks", "1"]])
def test_the_demo_without_its_extra_says_how_to_install_it(argv, tmp_path):
    """A server installed without `swarmlens[demo]` (here: Swarm hidden) answers one line, exit 2,
    before starting anything."""
    hide = "import sys\nsys.modules['swarm'] = None  # as if openai-swarm were not installed\n"
    seen = _run(*[a.format(tmp=tmp_path) for a in argv], code=hide + PROBE)
    assert seen["code"] == 2
    lines = seen["output"].strip().splitlines()
    assert len(lines) == 1 and "pip install 'swarmlens[demo]'" in lines[0], lines
    assert not (tmp_path / "up-state.json").exists()


def test_each_one_line_help_names_every_action_of_its_command():
    """`swarmlens --help` lists each command's actions as the command has them (the line of `db` once
    named two of its four)."""
    import argparse
    import re

    from swarmlens.commands.dispatch import COMMANDS, build_parser

    with_actions = 0
    for name, _, help_text in COMMANDS:
        command = build_parser(name)._subparsers._group_actions[0].choices[name]
        actions = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        for group in actions:
            with_actions += 1
            missing = [c for c in group.choices if not re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", help_text)]
            assert not missing, f"`{name}`'s help ({help_text!r}) leaves out {missing}"
    assert with_actions >= 5  # db, users, plans, prices, notify
