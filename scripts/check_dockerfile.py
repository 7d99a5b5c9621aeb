"""Runs the Dockerfile's build steps as written, without a container engine: its COPY lines into a
fresh directory (the image's WORKDIR), its `pip install` commands in a clean venv there (its ARG
values in their environment, as a build has them), then imports what the image's CMD runs. CI calls
it (.ci/run), once per image it builds; it exits non-zero when a step fails.

    python3 scripts/check_dockerfile.py [--keep] [--build-arg SWARMLENS_EXTRAS=demo]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def steps(text: str) -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile line, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the build directory and print where it is")
    ap.add_argument("--build-arg", action="append", default=[], metavar="NAME=VALUE",
                    help="a value for one of the Dockerfile's ARGs, as `docker build --build-arg` gives it")
    args = ap.parse_args()
    given = dict(a.partition("=")[::2] for a in args.build_arg)
    with open(os.path.join(REPO, "Dockerfile"), encoding="utf-8") as f:
        instructions = steps(f.read())
    work = tempfile.mkdtemp(prefix="swarmlens-dockerfile-")
    app = os.path.join(work, "app")
    os.makedirs(app)
    venv = os.path.join(work, "venv")
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    env = dict(os.environ, PATH=os.path.join(venv, "bin") + os.pathsep + os.environ.get("PATH", ""),
               PIP_DISABLE_PIP_VERSION_CHECK="1", VIRTUAL_ENV=venv)
    ran = 0
    build_args: dict[str, str] = {}
    try:
        for word, rest in instructions:
            if word == "ARG":
                name, _, default = rest.partition("=")
                value = given.get(name, " ".join(shlex.split(default)) if default else "")
                build_args[name] = env[name] = value
            elif word == "COPY":
                *sources, dest = shlex.split(rest)
                target = os.path.normpath(os.path.join(app, dest))
                for src in sources:
                    path = os.path.join(REPO, src)
                    if os.path.isdir(path):
                        shutil.copytree(path, os.path.join(target, "") if dest.endswith("/") and dest != "./"
                                        else target, dirs_exist_ok=True,
                                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", ".venv*"))
                    else:
                        os.makedirs(target if dest.endswith("/") else os.path.dirname(target), exist_ok=True)
                        shutil.copy(path, target if not dest.endswith("/") else os.path.join(target, src))
            elif word == "RUN":
                for part in rest.split("&&"):
                    cmd = part.strip()
                    if not cmd.startswith("pip "):
                        continue  # users and the like: the image's, not the install's
                    print(f"==> {cmd}", flush=True)
                    started = time.monotonic()
                    r = subprocess.run(cmd, shell=True, cwd=app, env=env)
                    if r.returncode != 0:
                        print(f"check_dockerfile: `{cmd}` failed with status {r.returncode}", file=sys.stderr)
                        return 1
                    print(f"    done in {time.monotonic() - started:.0f} s", flush=True)
                    ran += 1
        if ran == 0:
            print("check_dockerfile: the Dockerfile installs nothing with pip", file=sys.stderr)
            return 1
        # what CMD runs: the CLI (db migrate) and the WSGI app under gunicorn
        probe = ("import swarmlens.commands.dispatch, swarmlens.app, gunicorn; "
                 "from swarmlens.app import create_app; print('image imports ok')")
        r = subprocess.run([os.path.join(venv, "bin", "python"), "-c", probe], cwd="/", env=env)
        if r.returncode != 0:
            print("check_dockerfile: the installed image cannot import what its CMD runs", file=sys.stderr)
            return 1
        r = subprocess.run([os.path.join(venv, "bin", "swarmlens"), "db", "migrate", "--help"], cwd="/", env=env,
                           capture_output=True)
        if r.returncode != 0:
            print("check_dockerfile: `swarmlens db migrate --help` failed in the image", file=sys.stderr)
            return 1
        # the demo is in the image exactly when the build asked for it
        demo = "demo" in build_args.get("SWARMLENS_EXTRAS", "").split(",")
        r = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                            "import importlib.util as u; print(all(u.find_spec(m) for m in "
                            "('swarm', 'openai', 'opentelemetry.instrumentation.openai_swarm')))"],
                           cwd="/", env=env, capture_output=True, text=True)
        if r.stdout.strip() != str(demo):
            print(f"check_dockerfile: the demo's packages are {'missing from' if demo else 'in'} the image "
                  f"(SWARMLENS_EXTRAS={build_args.get('SWARMLENS_EXTRAS', '')!r}) {r.stderr[-500:]}", file=sys.stderr)
            return 1
        print("check_dockerfile: the Dockerfile's install steps pass"
              + "".join(f"; {k}={v!r}" for k, v in build_args.items()))
        return 0
    finally:
        if args.keep:
            print(f"build directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
