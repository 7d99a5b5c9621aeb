import clickhouse_connect, requests, time, pytest
@pytest.mark.parametrize("i", range(4))
def test_x(make_endpoint, i):
    ep = make_endpoint()
    with requests.get(ep.url, params={"query": "SELECT number, sleepEachRow(0.2) FROM numbers(10) "
                                               "SETTINGS max_block_size = 1"}, stream=True) as r:
        pieces = r.iter_content(chunk_size=None)
        first = next(pieces)
        rest = b"".join(pieces)
    r = requests.get(ep.url, params={"query": "SELECT number, sleepEachRow(0.02), throwIf(number = 20) "
                                              "FROM numbers(100) SETTINGS max_block_size = 1"})
    client = clickhouse_connect.get_client(host="127.0.0.1", port=ep.port)
    try:
        r = client.query("SELECT number, sleepEachRow(0.02), throwIf(number = 20) FROM numbers(100) SETTINGS max_block_size = 1", settings={"wait_end_of_query": 0})
        print("ROWS", len(r.result_rows), r.result_rows[:3], r.summary)
        assert False
    except AssertionError: raise
    except Exception as e: print("EXC", str(e)[:60])
