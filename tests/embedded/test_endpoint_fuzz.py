"""Fuzzing of the embedded endpoint at the HTTP and encoding level: a bounded run of the generated
cases (the long run is bench/bench_endpoint_fuzz.py), then one regression test for each defect the
fuzzing found, each against the real engine over real HTTP."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from swarmlens_testing.endpoint_fuzz import PASSWORD, USER, FuzzEndpoint, Fuzzer, Generator, describe, guard_checksum, prepare
from swarmlens_testing.polling import wait_until

CASES = 300  # 30 of each category
SEED = 20261128


@pytest.fixture(scope="module")
def fuzzed():
    with tempfile.TemporaryDirectory(prefix="swarmlens-fuzz-") as work:
        ep = FuzzEndpoint(Path(work)).start()
        try:
            corpus, checksum = prepare(ep)
            yield ep, Generator(corpus), checksum
        finally:
            ep.stop()


def test_generated_malformed_requests_get_4xx_answers_and_the_endpoint_keeps_serving(fuzzed):
    ep, gen, checksum = fuzzed
    # a request the endpoint still waits on after 0.5 s of silence is cut short by the client (2 s in the bench)
    fuzzer = Fuzzer(ep, case_timeout=30, quiet_before_close=0.5)
    failures, statuses, categories = [], Counter(), Counter()
    for i in range(CASES):
        case = gen.generate(SEED, i)
        out = fuzzer.run_case(case)
        statuses[out.status] += 1
        categories[case.category] += 1
        failures += [describe(out)] if out.failures else []
        if not ep.alive():
            break
        if (i + 1) % 100 == 0:
            problem = fuzzer.health()
            assert problem is None, f"after case {case.id}: {problem}"
    assert failures == []
    assert ep.alive() and fuzzer.health() is None
    assert guard_checksum(ep) == checksum  # the table seeded before the fuzzing is unchanged
    assert set(categories) == set(Generator.CATEGORIES)
    # the run reached what it is meant to: bombs stopped at the limit, refusals, and valid requests
    assert statuses["413"] and statuses["400"] and statuses["403"] and statuses["200"]
    assert not [s for s in statuses if s.isdigit() and int(s) >= 500]


def test_a_case_is_rebuilt_from_its_id(fuzzed):
    _, gen, _ = fuzzed
    assert [gen.generate(7, i).pieces for i in range(20)] == [gen.generate(7, i).pieces for i in range(20)]
    assert gen.generate(7, 3).pieces != gen.generate(8, 3).pieces


# --- regressions: one per defect the fuzzing found ------------------------------------------------

def _db(url: str) -> str:
    name = "fz_" + uuid.uuid4().hex[:10]
    assert requests.post(url, data=f"CREATE DATABASE {name}").status_code == 200
    return name


def _raw(url: str, payload: bytes) -> bytes:
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("sql, code", [
    pytest.param("SELECT throwIf(1)", 395, id="throwIf"),
    pytest.param("SELECT " + "(" * 3000 + "1" + ")" * 3000, 306, id="too-deep-recursion"),
    pytest.param("SELECT " + "+".join(["1"] * 3000), 167, id="too-deep-ast"),  # 400 on a server too
    pytest.param("SELECT {a:Int8}, {b:String}", 456, id="unknown-query-parameter"),
    pytest.param("SELECT {a:IPv4}", 675, id="cannot-parse-ipv4"),
])
def test_errors_the_request_caused_are_4xx_not_5xx(clickhouse_url, sql, code):
    r = requests.post(clickhouse_url, params={"param_a": "-1"}, data=sql)
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (400, str(code)), r.text
    assert r.text.startswith(f"Code: {code}. DB::Exception: ")


def test_a_bad_setting_value_or_output_format_is_400_with_its_message_once(clickhouse_url):
    r = requests.get(clickhouse_url, params={"query": "SELECT 1", "timeout_overflow_mode": "abc"})
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (400, "145")
    r = requests.get(clickhouse_url, params={"query": "SELECT 1", "default_format": "Form"})
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (400, "399")
    assert r.text.count("Code: 399") == 1 and r.text.count("(FORMAT_IS_NOT_SUITABLE_FOR_OUTPUT)") == 1


def test_corrupt_insert_data_is_refused_at_once_and_never_retried(clickhouse_url):
    """A body the engine's format libraries cannot parse (std::exception, Code 1001), or whose error
    message quotes bytes that are not UTF-8, is the request's fault: a 400 at once. It used to be taken
    for a failure of the server's, retried for 7.6 s and answered by closing the connection, which a
    collector takes as a reason to send the same poison batch again, for ever."""
    db = _db(clickhouse_url)
    requests.post(clickhouse_url, data=f"CREATE TABLE {db}.t (x UInt32, s String) ENGINE = MergeTree ORDER BY x")
    started = time.monotonic()
    r = requests.post(clickhouse_url, params={"query": f"INSERT INTO {db}.t FORMAT ORC"},
                      data=b"ORC\x11\x00\x00\n\x06\x12\x04\x08\x05P\x00garbage")
    assert r.status_code == 400 and r.headers["X-ClickHouse-Exception-Code"] == "1001", r.text
    r = requests.post(clickhouse_url, params={"query": f"INSERT INTO {db}.t FORMAT TSV"}, data=b"\xff\xfe\x99abc\tx\n")
    assert r.status_code == 400 and r.text.startswith("Code: "), r.text
    assert time.monotonic() - started < 7  # no retries (they took 7.6 s)
    assert requests.get(clickhouse_url, params={"query": f"SELECT count() FROM {db}.t"}).text == "0\n"


@pytest.mark.parametrize("param", ["query_id", "session_id"])
def test_ids_with_control_characters_are_refused_and_never_reach_a_header(clickhouse_url, param):
    r = requests.get(clickhouse_url, params={"query": "SELECT 1", param: "x\r\nSet-Cookie: evil=1"})
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (400, "36"), r.text
    assert "Set-Cookie" not in r.headers and f"{param} must not contain control characters" in r.text
    r = requests.get(clickhouse_url, params={"query": "SELECT 1", param: "ok-\u00e9"})
    assert r.status_code == 200 and r.text == "1\n"


def test_a_format_name_that_is_not_a_name_is_an_unknown_format(clickhouse_url):
    r = requests.get(clickhouse_url, params={"query": "SELECT 1", "default_format": "TSV\r\nX-Evil: 1"})
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (404, "73")
    assert "X-Evil" not in r.headers


def test_a_request_with_both_content_length_and_transfer_encoding_is_refused(clickhouse_url):
    """A proxy that frames by Content-Length would pass the chunked body on as a second request."""
    db = _db(clickhouse_url)
    requests.post(clickhouse_url, data=f"CREATE TABLE {db}.t (x UInt32) ENGINE = MergeTree ORDER BY x")
    resp = _raw(clickhouse_url, f"POST /?query=INSERT+INTO+{db}.t+FORMAT+TSV HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n7\n\r\n0\r\n\r\n".encode())
    assert resp.startswith(b"HTTP/1.1 400") and b"both Content-Length and Transfer-Encoding" in resp
    assert resp.count(b"HTTP/1.1 ") == 1 and b"connection: close" in resp.lower()
    assert requests.get(clickhouse_url, params={"query": f"SELECT count() FROM {db}.t"}).text == "0\n"


def test_a_body_cut_short_is_malformed_http_not_a_decompression_error(clickhouse_url):
    resp = _raw(clickhouse_url, b"POST /?query=SELECT+1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nSELECT")
    assert resp == b"" or (resp.startswith(b"HTTP/1.1 400") and b"decompress" not in resp.lower()), resp


def test_session_timeouts_that_are_not_numbers_are_refused(clickhouse_url):
    """nan compared false with every age: a session that never expires, 512 of them fill the endpoint."""
    for value in ("nan", "inf", "abc"):
        r = requests.get(clickhouse_url, params={"query": "SELECT 1", "session_id": f"s-{value}",
                                                 "session_timeout": value})
        assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (400, "36"), value
    r = requests.get(clickhouse_url, params={"query": "SELECT 1", "session_id": "s-ok", "session_timeout": "2.5",
                                             "close_session": "1"})
    assert r.status_code == 200


@pytest.mark.parametrize("level", ["0", "10", "99"])
def test_a_compression_level_out_of_range_is_400_not_an_internal_error(clickhouse_url, level):
    r = requests.get(clickhouse_url, params={"query": "SELECT number FROM numbers(3)", "enable_http_compression": "1",
                                             "http_zlib_compression_level": level},
                     headers={"Accept-Encoding": "gzip"})
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (400, "36")
    assert "http_zlib_compression_level must be 1 to 9" in r.text  # the error body is gzip, decoded by requests
    r = requests.get(clickhouse_url, params={"query": "SELECT number FROM numbers(3)", "enable_http_compression": "1",
                                             "http_zlib_compression_level": "9"}, headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.text == "0\n1\n2\n"


def _form(fields: dict, files: dict) -> tuple[str, bytes]:
    boundary = "b" + uuid.uuid4().hex
    out = b""
    for k, v in fields.items():
        out += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
    for k, v in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{k}.tsv\"\r\n\r\n".encode()
                + v + b"\r\n")
    return f"multipart/form-data; boundary={boundary}", out + f"--{boundary}--\r\n".encode()


def test_external_data_larger_than_the_query_limit_is_accepted(make_endpoint):
    """The form decoder's memory limit applied to each piece received, file parts included: external
    data above SWARMLENS_CLICKHOUSE_MAX_QUERY_BYTES was refused as a malformed form."""
    ep = make_endpoint(max_query_bytes=64 << 10)
    rows = b"".join(b"%d\n" % i for i in range(100_000))  # about 590 KB
    ctype, body = _form({"query": "SELECT count(), sum(x) FROM ext", "ext_structure": "x UInt32"}, {"ext": rows})
    r = requests.post(ep.url, data=body, headers={"Content-Type": ctype})
    assert r.status_code == 200 and r.text == "100000\t4999950000\n", r.text
    ctype, body = _form({"query": "SELECT 1", "big": "v" * (100 << 10)}, {})
    r = requests.post(ep.url, data=body, headers={"Content-Type": ctype})
    # a field (SQL, a parameter) is still held to the limit, as SQL in a body is ("Max query size exceeded")
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (400, "62") and "too large" in r.text


def test_external_data_in_an_unknown_format_is_404_not_an_internal_error(clickhouse_url):
    ctype, body = _form({"query": "SELECT count() FROM ext", "ext_structure": "x UInt32", "ext_format": "NoSuch"},
                        {"ext": b"1\n"})
    r = requests.post(clickhouse_url, data=body, headers={"Content-Type": ctype})
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (404, "73"), r.text


def test_an_error_answers_head_with_headers_alone_and_the_connection_keeps_serving(clickhouse_url):
    """An error sent its body after HEAD: h11 refused it mid-response and the connection died with a
    traceback in the log."""
    u = urlsplit(clickhouse_url)
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(b"HEAD /?query=SELEC+1 HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /?query=SELECT+42&wait_end_of_query=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    first, second = out.split(b"HTTP/1.1 200", 1)
    assert first.startswith(b"HTTP/1.1 400") and first.endswith(b"\r\n\r\n")  # headers only
    assert b"X-ClickHouse-Exception-Code: 62" in first
    assert second.endswith(b"\r\n\r\n42\n")


def test_a_form_part_without_a_name_is_400_not_an_internal_error(clickhouse_url):
    boundary = "b" + uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"query\"\r\n\r\nSELECT 1\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{boundary}--\r\n").encode()
    r = requests.post(clickhouse_url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 400 and "part without a name" in r.text, r.text


def test_a_query_id_already_running_is_409_like_a_locked_session(clickhouse_server):
    """Code 216 was a 500: the request is not wrong and the server has not failed; the id is busy for a
    moment, as a session is (Code 373, 409)."""
    url, qid, box = clickhouse_server.url, "busy-" + uuid.uuid4().hex, {}

    def slow():
        box["r"] = requests.get(url, params={"query": "SELECT sleepEachRow(0.1) FROM numbers(20) SETTINGS "
                                                      "max_block_size = 1", "query_id": qid})

    t = threading.Thread(target=slow)
    t.start()
    wait_until(lambda: any(r.query_id == qid for r in clickhouse_server.registry.snapshot()), 10,
               what="the query to run")
    r = requests.get(url, params={"query": "SELECT 1", "query_id": qid})
    assert (r.status_code, r.headers["X-ClickHouse-Exception-Code"]) == (409, "216"), r.text
    t.join(30)
    assert box["r"].status_code == 200
    assert requests.get(url, params={"query": "SELECT 1", "query_id": qid}).text == "1\n"  # free again


def test_a_session_closed_by_one_request_is_never_used_by_the_next(make_endpoint, monkeypatch):
    """close_session=1 closed the session's engine connection after releasing it: a request that took
    the session in between ran on a closing connection (a 500 AttributeError, or a fatal error of the
    engine that left it answering Code 236 to everything). The close is slowed down here so that the
    next request always arrives in between."""
    from swarmlens.embedded.engine import Engine

    close = Engine.close_session

    def slow_close(self, *args, **kwargs):
        time.sleep(0.5)
        return close(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "close_session", slow_close)
    ep = make_endpoint()
    sid = "closing-" + uuid.uuid4().hex
    assert requests.get(ep.url, params={"query": "SELECT 1", "session_id": sid}).status_code == 200
    box: dict = {}

    def closing():
        box["a"] = requests.get(ep.url, params={"query": "SELECT 1", "session_id": sid, "close_session": "1"})

    t = threading.Thread(target=closing)
    t.start()
    time.sleep(0.2)  # the first request is closing the session now
    r = requests.get(ep.url, params={"query": "SELECT sleep(1), 2", "session_id": sid})
    t.join(30)
    assert box["a"].status_code == 200
    assert r.status_code in (200, 409), r.text  # locked while it closes, or a new session after
    assert r.status_code == 409 or r.text == "0\t2\n"
    assert requests.get(ep.url, params={"query": "SELECT 3", "session_id": sid}).text == "3\n"
