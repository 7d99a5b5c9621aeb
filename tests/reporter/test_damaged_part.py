"""A damaged part of a table (a data file deleted under the engine) is named by /readyz, by the
page that fails on it, by `swarmlens status` and by `swarmlens db check`, whose --repair sets it
aside so the reporter answers again."""

from __future__ import annotations

import json
import os

import pytest


def _damage_newest_part(client, db: str, table: str) -> str:
    path, name = client.query("SELECT path, name FROM system.parts WHERE database = {db:String} AND "
                              "table = {t:String} AND active ORDER BY modification_time DESC, name DESC LIMIT 1",
                              parameters={"db": db, "t": table}).result_rows[0]
    gone = [f for f in os.listdir(path) if f.endswith(".bin")]
    assert gone, os.listdir(path)
    for f in gone:
        os.unlink(os.path.join(path, f))
    return name


@pytest.fixture(scope="module")
def damaged(seeded):
    cfg = seeded.config
    parts = {"tasks": _damage_newest_part(seeded.client, cfg.SWARMLENS_DATABASE, "tasks"),
             "otel_traces": _damage_newest_part(seeded.client, cfg.SWARMLENS_OTEL_DATABASE, "otel_traces")}
    return parts


def test_a_damaged_part_is_named_by_the_page_readyz_status_and_db_check(app, ops, seeded, damaged, tmp_path,
                                                                       monkeypatch, capsys):
    from swarmlens.commands import dispatch as cli
    from swarmlens.commands.status import gather

    cfg = seeded.config
    tasks = f"{cfg.SWARMLENS_DATABASE}.tasks"
    traces = f"{cfg.SWARMLENS_OTEL_DATABASE}.otel_traces"
    # The page that reads the damaged table says which table and what to run.
    r = ops.get("/users/alice")
    assert r.status_code == 500
    page = r.get_data(as_text=True)
    assert "has a damaged part" in page and (tasks in page or traces in page) and "swarmlens db check" in page
    # /readyz confirms each part a query failed on with CHECK TABLE ... PART: the page's, and the
    # engine's last error (a query of the damaged span table, as another client would run).
    anon = app.test_client()
    with pytest.raises(Exception, match="107"):
        seeded.client.query(f"SELECT sum(length(SpanName)) FROM `{cfg.SWARMLENS_OTEL_DATABASE}`.otel_traces")
    r = anon.get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert body["clickhouse"] == "damaged"
    assert {(d["table"], d["part"]) for d in body["damaged"]} == {(tasks, damaged["tasks"]),
                                                                  (traces, damaged["otel_traces"])}
    assert "swarmlens db check --repair" in body["message"]
    # `swarmlens status` (a stack that runs: this process stands in for `up`).
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "up-state.json").write_text(json.dumps({
        "pid": os.getpid(), "state": "running", "children": [], "urls": {"clickhouse": cfg.SWARMLENS_CLICKHOUSE_URL}}))
    facts = gather(str(data_dir), cfg)
    assert facts["clickhouse"]["state"] == "damaged", facts["clickhouse"]
    assert any((tasks in p or traces in p) and "swarmlens db check --repair" in p for p in facts["problems"]), \
        facts["problems"]
    # `swarmlens db check`: a one-line verdict naming both tables and the repair command, exit 1.
    for key in ("SWARMLENS_OTEL_DATABASE", "SWARMLENS_DATABASE", "SWARMLENS_CLICKHOUSE_URL"):
        monkeypatch.setenv(key, cfg[key])
    monkeypatch.setenv("SWARMLENS_DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("SWARMLENS_CLICKHOUSE_PASSWORD", "")
    capsys.readouterr()
    assert cli.main(["db", "check"]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("DAMAGED: 2 part(s)") and tasks in last and traces in last
    assert "run `swarmlens db check --repair`" in last
    # --repair sets both parts aside; the reporter answers again.
    assert cli.main(["db", "check", "--repair"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("ok: no damaged part") and "2 damaged part(s) set aside" in out
    assert anon.get("/readyz").status_code == 200
    assert ops.get("/users/alice").status_code == 200
