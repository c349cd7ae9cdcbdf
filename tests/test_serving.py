"""The REST service (`hf-rec serve`): a real uvicorn server on a loopback port, real HTTP requests. Its answers equal
`model.recommend`'s; every bad request gets a 4xx naming the problem, and the server keeps serving after them."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'hf-rec[serve]'")
import uvicorn  # noqa: E402

from hf_rec.hub import load_recommender  # noqa: E402
from hf_rec.serving import create_app  # noqa: E402
from hub_helpers import tiny_model_folder  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def folder():
    return tiny_model_folder("sasrec")


@pytest.fixture(scope="module")
def server(folder):
    app = create_app(str(folder), max_users=8, max_k=20, max_body_bytes=4096)
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{config.port}", timeout=30) as client:
        yield client
    server.should_exit = True
    thread.join(timeout=10)


def expected(folder, histories, k, exclude_seen=True, exclude=None):
    model, tok = load_recommender(folder)
    indices, scores = model.recommend([tok.encode(h) for h in histories], k=k, exclude_seen=exclude_seen,
                                      exclude=None if exclude is None else [tok.encode(e) for e in exclude])  # fmt: skip
    return [[(tok.convert_index_to_id(i), s) for i, s in zip(row_i, row_s) if i >= 0]
            for row_i, row_s in zip(indices.tolist(), scores.tolist())]  # fmt: skip


def assert_rows(got, want):
    assert [[r["item_id"] for r in row] for row in got] == [[i for i, _ in row] for row in want]
    for row, want_row in zip(got, want):
        assert [r["score"] for r in row] == pytest.approx([s for _, s in want_row], rel=1e-5, abs=1e-6)


def test_health_and_schema(server):
    health = server.get("/health").json()
    assert health == {"status": "ok", "model_type": "sasrec", "num_items": 30, "reads_timestamps": False,
                      "user_features": [], "interaction_features": []}
    schema = server.get("/openapi.json").json()
    assert "/recommend" in schema["paths"] and "RecommendRequest" in json.dumps(schema)


def test_answers_equal_recommend(server, folder):
    histories = [["i3", "i7", "i1"], ["i12"], ["i0", "i29", "i5"]]
    response = server.post("/recommend", json={"users": [{"history": h} for h in histories], "k": 5})
    assert response.status_code == 200
    rows = response.json()["recommendations"]
    assert_rows(rows, expected(folder, histories, 5))
    tok = load_recommender(folder)[1]
    assert all(r["text"] == tok.text(tok.convert_id_to_index(r["item_id"])) for row in rows for r in row)
    # further exclusions (unknown ones ignored), seen items allowed
    body = {"users": [{"history": ["i3", "i7"], "exclude": ["i1", "unknown-is-ignored"]}], "k": 6,
            "exclude_seen": False}  # fmt: skip
    rows = server.post("/recommend", json=body).json()["recommendations"]
    assert "i1" not in {r["item_id"] for r in rows[0]}
    assert_rows(rows, expected(folder, [["i3", "i7"]], 6, exclude_seen=False, exclude=[["i1"]]))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"users": [{"history": ["i3", "nope"]}]}, 422, "unknown item id(s): 'nope'"),
        ({"users": [{"history": []}]}, 422, "history"),
        ({"users": []}, 422, "users"),
        ({"users": [{"history": ["i3"]}], "k": 0}, 422, "k"),
        ({"users": [{"history": ["i3"]}], "k": 21}, 422, "k=21 is over the limit of 20"),
        ({"users": [{"history": ["i3"]}] * 9}, 422, "9 users in one request; the limit is 8"),
        ({"users": [{"history": ["i3"], "timestamps": [1, 2, 3]}]}, 422, "'timestamps' has 3 values for 1 items"),
        ({"users": [{"history": ["i3"]}], "unknown_items": "skip"}, 422, "unknown_items"),
        ({"users": [{"history": ["i3"], "colour": "red"}]}, 422, "colour"),
        ({"users": [{"history": "i3"}]}, 422, "history"),
    ],
)
def test_bad_requests_get_a_4xx_naming_the_problem(server, body, status, message):
    response = server.post("/recommend", json=body)
    assert response.status_code == status, response.text
    assert message in response.text


def test_malformed_and_oversized_bodies_and_the_server_keeps_serving(server):
    response = server.post("/recommend", content=b'{"users": [', headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.text
    big = {"users": [{"history": [f"i{n % 30}" for n in range(2000)]}]}
    response = server.post("/recommend", json=big)
    assert response.status_code == 413 and "over the limit of 4096" in response.text
    chunked = server.post("/recommend", content=iter([json.dumps(big).encode()]),
                          headers={"content-type": "application/json"})  # fmt: skip  (no content-length)
    assert chunked.status_code == 413
    small = {"users": [{"history": ["i3"]}], "k": 3}
    chunked = server.post("/recommend", content=iter([json.dumps(small).encode()]),
                          headers={"content-type": "application/json"})  # fmt: skip
    assert chunked.status_code == 200 and len(chunked.json()["recommendations"][0]) == 3
    assert server.post("/recommend", json={"users": [{"history": ["i3"]}], "k": 3}).status_code == 200
    assert server.get("/health").status_code == 200


def test_unknown_items_can_be_dropped(server, folder):
    body = {"users": [{"history": ["i3", "nope", "i7"]}], "k": 4, "unknown_items": "ignore"}
    assert_rows(server.post("/recommend", json=body).json()["recommendations"], expected(folder, [["i3", "i7"]], 4))
    body = {"users": [{"history": ["nope"]}], "unknown_items": "ignore"}
    response = server.post("/recommend", json=body)
    assert response.status_code == 422 and "no item the model knows" in response.text


def test_concurrent_requests_are_scored_together_and_a_bad_one_fails_alone(server, folder):
    from concurrent.futures import ThreadPoolExecutor

    histories = [[f"i{(3 * n + j) % 30}" for j in range(1 + n % 4)] for n in range(24)]
    bodies = [{"users": [{"history": h}], "k": 4} for h in histories]
    bodies[5] = {"users": [{"history": ["i1", "nope"]}], "k": 4}
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(lambda body: server.post("/recommend", json=body), bodies))
    assert responses[5].status_code == 422 and "'nope'" in responses[5].text
    good = [n for n in range(24) if n != 5]
    assert all(responses[n].status_code == 200 for n in good)
    assert_rows([responses[n].json()["recommendations"][0] for n in good], expected(folder, [histories[n] for n in good], 4))


def test_request_batcher_merges_waiting_requests():
    from concurrent.futures import ThreadPoolExecutor

    from hf_rec.serving.service import RequestBatcher

    calls = []

    def score(users, options):
        calls.append(len(users))
        time.sleep(0.05)  # while one batch is scored, the others queue up
        if any(user == "bad" for user in users):
            raise ValueError("bad user")
        return [f"{user}-{options}" for user in users]

    batcher = RequestBatcher(score, max_users=100)

    def submit(n):
        try:
            return batcher([f"u{n}", f"v{n}"] if n != 7 else ["bad"], options=n % 2)
        except ValueError as err:
            return str(err)

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(submit, range(16)))
    assert results[7] == "bad user"
    assert all(results[n] == [f"u{n}-{n % 2}", f"v{n}-{n % 2}"] for n in range(16) if n != 7)
    assert len(calls) < 16 + 8  # merged: fewer calls than requests, even with the bad one retried alone
    assert max(calls) > 2


def test_request_batcher_never_leaves_a_request_waiting_after_a_fault():
    from concurrent.futures import ThreadPoolExecutor

    from hf_rec.serving.service import RequestBatcher

    def score(users, options):
        time.sleep(0.02)
        raise RuntimeError("out of memory")

    batcher = RequestBatcher(score, max_users=100)

    def submit(n):
        try:
            batcher([n], options=0)
        except RuntimeError as err:
            return str(err)

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(submit, range(8), timeout=30)) == ["out of memory"] * 8
    with ThreadPoolExecutor(1) as pool:  # the batcher is idle again: a new request is scored, not queued forever
        assert pool.submit(submit, 99).result(timeout=10) == "out of memory"
