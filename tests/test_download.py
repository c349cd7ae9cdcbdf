"""Downloader: loopback HTTP server only (no network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import pytest

from hf_rec.data import download as dl
from hf_rec.data import load_sequential_dataset


@pytest.fixture
def served(tmp_path):
    """Serve tmp_path/www on 127.0.0.1 (a free port); yields (www folder, base url)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass


def _make_zip(path: Path, files: dict[str, str]) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_good_checksum(served, tmp_path):
    www, url = served
    sha = _make_zip(www / "toy.zip", {"toy/a.txt": "hello"})
    dest = tmp_path / "out" / "toy.zip"
    got = dl.download_and_verify(f"{url}/toy.zip", sha, dest)
    assert got == dest and dest.read_bytes() == (www / "toy.zip").read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["toy.zip"]
    # already there with the right hash: no second download (server file removed to prove it)
    (www / "toy.zip").unlink()
    assert dl.download_and_verify(f"{url}/toy.zip", sha, dest) == dest
    # a directory as dest: the URL's file name is used
    (www / "toy.zip").write_bytes(dest.read_bytes())
    (tmp_path / "out2").mkdir()
    assert dl.download_and_verify(f"{url}/toy.zip", sha, tmp_path / "out2") == tmp_path / "out2" / "toy.zip"


def test_bad_checksum_leaves_nothing(served, tmp_path):
    www, url = served
    actual = _make_zip(www / "toy.zip", {"toy/a.txt": "hello"})
    wrong = "0" * 64
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        dl.download_and_verify(f"{url}/toy.zip", wrong, out / "toy.zip")
    msg = str(err.value)
    assert wrong in msg and actual in msg
    assert not out.exists() or list(out.iterdir()) == []


def test_extract_zip_and_zip_slip(tmp_path):
    good = tmp_path / "good.zip"
    _make_zip(good, {"ds/x.txt": "1", "ds/sub/y.txt": "2"})
    dl.extract_zip(good, tmp_path / "dest")
    assert (tmp_path / "dest" / "ds" / "sub" / "y.txt").read_text() == "2"
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["ds"]  # temp folder cleaned up
    evil = tmp_path / "evil.zip"
    _make_zip(evil, {"../escape.txt": "x"})
    with pytest.raises(ValueError, match="unsafe"):
        dl.extract_zip(evil, tmp_path / "dest2")
    assert not (tmp_path / "escape.txt").exists()


def _toy_ml100k() -> dict[str, str]:
    rows = []
    for user in (1, 2):
        for k, item in enumerate((1, 2, 3, 4)):
            rows.append(f"{user}\t{item if user == 1 else 5 - item}\t{3 + (k % 2)}\t{1000 + k}")
    genres = "".join(f"{g}|{i}\n" for i, g in enumerate(dl_genres()))
    items = "".join(
        f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|" + "|".join("1" if j == i else "0" for j in range(19)) + "\n"
        for i in range(1, 5)
    )
    return {"ml-100k/u.data": "\n".join(rows) + "\n", "ml-100k/u.item": items, "ml-100k/u.genre": genres}


def dl_genres():
    from hf_rec.data.builtin import ML_100K_GENRES

    return ML_100K_GENRES


def test_builtin_download_end_to_end(served, monkeypatch):
    www, url = served
    monkeypatch.setenv("HF_HOME", str(www.parent / "hf_home"))
    sha = _make_zip(www / "ml-100k.zip", _toy_ml100k())
    monkeypatch.setitem(dl.DATASET_ARCHIVES, "ml-100k", dl.DatasetArchive(f"{url}/ml-100k.zip", sha, "ml-100k"))
    monkeypatch.delenv("HF_REC_DATA_DIR", raising=False)
    # offline mode refuses to download (set explicitly: a hub fixture may have switched the session online)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="offline"):
        load_sequential_dataset("ml-100k")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    splits, tok = load_sequential_dataset("ml-100k")
    folder = dl.datasets_cache_dir() / "ml-100k"
    assert (folder / "u.data").is_file()
    assert str(folder) == tok.metadata["source"]
    assert tok.num_items == 4 and len(splits["test"]) == 2
    assert tok.text(tok.encode(["1"])[0]) == "Movie 1 (1995). Genres: Action"
    # second call uses the cache: works with the server gone
    (www / "ml-100k.zip").unlink()
    splits2, tok2 = load_sequential_dataset("ml-100k")
    assert tok2.metadata["fingerprint"] == tok.metadata["fingerprint"]


def test_builtin_download_bad_checksum(served, monkeypatch):
    www, url = served
    _make_zip(www / "ml-100k.zip", _toy_ml100k())
    monkeypatch.setitem(dl.DATASET_ARCHIVES, "ml-100k", dl.DatasetArchive(f"{url}/ml-100k.zip", "f" * 64, "ml-100k"))
    monkeypatch.setenv("HF_HOME", str(www.parent / "hf_home"))
    monkeypatch.delenv("HF_REC_DATA_DIR", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_sequential_dataset("ml-100k")
    cache = dl.datasets_cache_dir()
    assert not cache.exists() or list(cache.iterdir()) == []


def test_hf_rec_data_dir_env(ml100k_dir, monkeypatch):
    monkeypatch.setenv("HF_REC_DATA_DIR", str(ml100k_dir.parent))
    splits, tok = load_sequential_dataset("ml-100k", item_text=False)
    assert tok.num_items == 1682 and tok.metadata["source"] == str(ml100k_dir)


def test_amazon_without_data_dir_asks_for_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_REC_DATA_DIR", str(tmp_path))
    for name in ("amazon-scientific", "amazon-beauty"):
        with pytest.raises(ValueError, match="data_dir"):
            load_sequential_dataset(name)


def test_known_archives():
    assert dl.DATASET_ARCHIVES["ml-100k"].url == "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert dl.DATASET_ARCHIVES["ml-1m"].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    for spec in dl.DATASET_ARCHIVES.values():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0
