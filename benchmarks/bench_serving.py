"""Serving benchmarks (issue 18), written to benchmarks/results/serving.md:

    python benchmarks/bench_serving.py --part onnx    # ONNX vs PyTorch on every ML-1M user: top-10 agreement, latency
    python benchmarks/bench_serving.py --part index   # faiss flat / HNSW / IVF: recall@10 vs exact, latency, 1e4 and 1e6
    python benchmarks/bench_serving.py --part batch   # batch scoring of every ML-1M user to Parquet: users/s
    python benchmarks/bench_serving.py --part rest    # hf-rec serve on loopback: requests/s, p50 / p99 at 1 and 32 clients

Model: the published model_cards/sasrec-ml1m folder; data: ../shared/data/ml-1m. One torch / faiss thread each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "model_cards" / "sasrec-ml1m"
DATA = Path(os.environ.get("HF_REC_SHARED_DATA", REPO.parent / "shared" / "data")) / "ml-1m"
RESULTS = REPO / "benchmarks" / "results" / "serving.md"


def machine() -> str:
    return f"CPU-2 ({os.cpu_count()} cores, {platform.processor() or platform.machine()}), torch {torch.__version__}, 1 thread"


def ml1m_users():
    from hf_rec.data import load_sequential_dataset
    from hf_rec.hub import load_recommender

    model, tokenizer = load_recommender(MODEL)
    splits, _ = load_sequential_dataset("ml-1m", DATA)
    histories = [list(h) for h in splits["test"]["item_ids"]]
    return model.eval(), tokenizer, histories


def part_onnx() -> str:
    import onnxruntime as ort

    from hf_rec.models.retrieval import topk_items
    from hf_rec.serving.export import export_onnx

    model, _, histories = ml1m_users()
    out = Path(tempfile.mkdtemp()) / "sasrec-ml1m-onnx"
    start = time.perf_counter()
    config = export_onnx(model, out, check_users=256)
    export_seconds = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(out / "user_encoder.onnx"), options, providers=["CPUExecutionProvider"])
    items = model.get_item_embeddings().detach()
    same, max_diff, t_onnx, t_torch = 0, 0.0, 0.0, 0.0
    for start_row in range(0, len(histories), 256):
        chunk = histories[start_row : start_row + 256]
        input_ids, attention_mask = model.histories_to_inputs(chunk)
        t0 = time.perf_counter()
        users_onnx = session.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})[0]
        t1 = time.perf_counter()
        with torch.inference_mode():
            users_torch = model.get_user_embeddings(input_ids, attention_mask)
        t2 = time.perf_counter()
        t_onnx, t_torch = t_onnx + t1 - t0, t_torch + t2 - t1
        max_diff = max(max_diff, float(np.abs(users_onnx - users_torch.numpy()).max()))
        specials = model.config.special_ids
        a = topk_items(users_torch, items, 10, exclude=chunk, special_ids=specials)[0]
        b = topk_items(torch.from_numpy(users_onnx), items, 10, exclude=chunk, special_ids=specials)[0]
        same += int((a == b).all(dim=1).sum())
    n = len(histories)
    return (
        "## ONNX export (`hf-rec export`)\n\n"
        f"`model_cards/sasrec-ml1m` exported in {export_seconds:.1f} s; every ML-1M user's test history ({n} users, "
        "batches of 256, histories up to 200 items) through onnxruntime and through PyTorch:\n\n"
        "| users | same top-10 (seen filtered) | max abs user-vector difference | onnxruntime s | PyTorch s |\n"
        "|---|---|---|---|---|\n"
        f"| {n} | {same} / {n} | {max_diff:.2e} | {t_onnx:.2f} | {t_torch:.2f} |\n\n"
        f"Random-history check recorded in export_config.json: {json.dumps(config['check'])}.\n"
        "Every family exports (tests/test_export.py runs each through onnxruntime); GRU4Rec and NARM through the "
        "TorchScript exporter (torch.export fixes an nn.GRU to the example length).\n"
    )


def clustered_items(n: int, dim: int, seed: int) -> np.ndarray:
    """Items around 1,000 centres (catalogues have genres / categories; isotropic noise is the worst case)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 1000, n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def part_index() -> str:
    import faiss

    from hf_rec.serving.index import build_index, search_index

    faiss.omp_set_num_threads(1)
    rows = []
    for n in (10_000, 1_000_000):
        items = np.vstack([np.zeros((1, 64), np.float32), clustered_items(n, 64, 0)])  # row 0: padding
        rng = np.random.default_rng(1)
        queries = items[rng.integers(1, n + 1, 1000)] + 0.3 * rng.standard_normal((1000, 64)).astype(np.float32)
        exact_ids = None
        for kind, params in (("flat", {}), ("hnsw", {"hnsw_m": 32, "ef_construction": 80, "ef_search": 128}),
                             ("ivf", {"nlist": int(4 * n**0.5), "nprobe": 16})):  # fmt: skip
            t0 = time.perf_counter()
            index = build_index(items, (0,), kind=kind, **params)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            ids, _ = search_index(index, queries, 10)
            batch_ms = (time.perf_counter() - t0) * 1000 / len(queries)
            singles = []
            for q in queries[:200]:
                t0 = time.perf_counter()
                search_index(index, q[None], 10)
                singles.append((time.perf_counter() - t0) * 1000)
            if kind == "flat":
                exact_ids = ids
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids)])
            rows.append(f"| {n:,} | {kind} {params or ''} | {recall:.4f} | {build:.1f} | {batch_ms:.3f} | "
                        f"{statistics.median(singles):.3f} | {np.percentile(singles, 99):.3f} |")  # fmt: skip
            print(rows[-1], flush=True)
    return (
        "## Item index (`hf-rec index`, faiss)\n\n"
        "64-dimensional unit item vectors around 1,000 random centres (N(0, 0.5) spread), 1,000 queries near random "
        "items; recall@10 = overlap of the top 10 with the exact (flat) top 10. One faiss thread.\n\n"
        "| items | index | recall@10 vs exact | build s | ms / query (batch of 1,000) | p50 ms (one query) | p99 ms |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def part_batch() -> str:
    from hf_rec.serving.batch import dataset_histories, write_recommendations
    from hf_rec.data import load_sequential_dataset
    from hf_rec.hub import load_recommender

    model, tokenizer = load_recommender(MODEL)
    splits, _ = load_sequential_dataset("ml-1m", DATA)
    out = Path(tempfile.mkdtemp()) / "recs.parquet"
    report = write_recommendations(model, tokenizer, dataset_histories(splits["test"]), out, k=10, progress=False)
    size = out.stat().st_size
    return (
        "## Batch scoring (`hf-rec batch-score`)\n\n"
        "| data | users | k | seconds | users / s | Parquet size |\n|---|---|---|---|---|---|\n"
        f"| ML-1M, whole histories | {report['users']} | 10 | {report['seconds']:.1f} | "
        f"{report['users_per_second']:.0f} | {size / 1e6:.2f} MB |\n\n"
        "Command: `hf-rec batch-score model_cards/sasrec-ml1m --data ml-1m --data-dir ../shared/data/ml-1m "
        "--output recs.parquet` (chunks of 4,096 users).\n"
    )


async def _load(url: str, bodies: list[dict], clients: int, per_client: int) -> tuple[float, list[float], int]:
    import httpx

    latencies, errors = [], 0
    async with httpx.AsyncClient(timeout=60) as client:
        async def worker(offset: int):
            nonlocal errors
            for i in range(per_client):
                body = bodies[(offset * per_client + i) % len(bodies)]
                t0 = time.perf_counter()
                response = await client.post(url, json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += response.status_code != 200

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in range(clients)))
        return time.perf_counter() - t0, latencies, errors


def part_rest() -> str:
    import httpx

    _, tokenizer, histories = ml1m_users()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "hf_rec.cli", "serve", str(MODEL), "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        bodies = [{"users": [{"history": tokenizer.decode(h)}], "k": 10} for h in histories[:500]]
        rows = []
        for clients, per_client in ((1, 200), (32, 10)):
            seconds, latencies, errors = asyncio.run(_load(f"{base}/recommend", bodies, clients, per_client))
            rows.append(f"| {clients} | {clients * per_client} | {errors} | {clients * per_client / seconds:.1f} | "
                        f"{statistics.median(latencies):.1f} | {np.percentile(latencies, 99):.1f} |")  # fmt: skip
            print(rows[-1], flush=True)
        bad = [(b'{"users": [', 422), (json.dumps({"users": [{"history": ["no-such-item"]}]}).encode(), 422),
               (json.dumps({"users": [{"history": []}]}).encode(), 422),
               (json.dumps({"users": [{"history": ["1"]}], "k": 0}).encode(), 422),
               (b"x" * (2 << 20), 413)]  # fmt: skip
        statuses = [httpx.post(f"{base}/recommend", content=body, headers={"content-type": "application/json"}).status_code
                    for body, _ in bad]  # fmt: skip
        alive = httpx.post(f"{base}/recommend", json=bodies[0]).status_code
    finally:
        server.terminate()
        server.wait(timeout=30)
    return (
        "## REST service (`hf-rec serve`, FastAPI + uvicorn, one worker)\n\n"
        "Loopback, one user per request (a real ML-1M history, raw ids), k = 10, asyncio + httpx clients on the same "
        "2 cores as the server.\n\n"
        "| concurrent clients | requests | errors | requests / s | p50 ms | p99 ms |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n\n"
        f"Bad inputs (malformed JSON, unknown id, empty history, k = 0, a 2 MiB body) answered {statuses} "
        f"(expected {[s for _, s in bad]}); a valid request afterwards: {alive}.\n"
    )


PARTS = {"onnx": part_onnx, "index": part_index, "batch": part_batch, "rest": part_rest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=list(PARTS), help="parts to run (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sections = {}
    if RESULTS.is_file():  # keep the sections of parts not run now
        for block in RESULTS.read_text().split("\n## ")[1:]:
            sections[block.split("\n", 1)[0]] = "## " + block.rstrip() + "\n"
    for name in args.part or list(PARTS):
        text = PARTS[name]()
        sections[text.split("\n", 1)[0][3:]] = text + f"\nMachine: {machine()}, {time.strftime('%Y-%m-%d')}; command: " \
                                                     f"`python benchmarks/bench_serving.py --part {name}`.\n"
    header = "# Serving benchmarks\n\nMeasured by `benchmarks/bench_serving.py`; each section names its machine.\n\n"
    RESULTS.write_text(header + "\n".join(sections.values()))


if __name__ == "__main__":
    main()
