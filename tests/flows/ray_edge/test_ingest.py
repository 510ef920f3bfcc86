"""The `ray` ingest engine against the local one, on one small local Ray shared by the module:
the same version id, rows, splits and quarantine for tar shards (with a corrupt image, duplicate
ids and a damaged shard), an image folder and text files; file order does not change the id;
the other engine finds the version already there; failures publish nothing."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import ray
from PIL import Image

from cl_core.datasets import DatasetStore, IngestError, TextSourceSpec
from flows.ray_edge.ingest import ingest_with_ray
from tests.conftest import clpipe, last_json

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli_ingest(tmp_path_factory):
    """`clpipe ingest SHARDS --engine ray` of the toy shards (_toy_shards, below), started with the module in
    a process of its own (with its own local Ray; mostly one busy core), so that it runs beside the module's
    in-process tests; the last test reads what it printed. Yields the folder, the source and the call."""
    root = tmp_path_factory.mktemp("cli-ingest")
    source = _toy_shards(root / "shards")
    with ThreadPoolExecutor(1) as pool:
        yield root, source, pool.submit(clpipe, "ingest", str(source), "--name", "toy", "--engine", "ray",
                                        "--max-bad-fraction", "0.3", "--json", workspace=root / "ws")


@pytest.fixture(scope="module", autouse=True)
def local_ray(cli_ingest):
    """One 2-CPU Ray for the module (an earlier module's Ray, sized for training, is replaced). The CLI's
    ingest (`cli_ingest`) is started first, to run beside the tests."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _png(value: int, size: tuple[int, int] = (6, 5), rgb: bool = False) -> bytes:
    buffer = io.BytesIO()
    shape = (*size, 3) if rgb else size
    Image.fromarray(np.full(shape, value % 256, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _shard(path: Path, members: list[tuple[str, bytes]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _samples(keys, images=None) -> list[tuple[str, bytes]]:
    members = []
    for i, key in enumerate(keys):
        image = (images or {}).get(key, _png(i * 7 + len(key)))
        members += [(f"{key}.png", image), (f"{key}.cls", str(sum(key.encode()) % 3).encode())]
    return members


def _toy_shards(folder: Path) -> Path:
    """41 samples over three shards (read in name order: test, train-0000, train-0001), plus: a
    corrupt image (a005), an id twice with different images (b003: the test shard's copy comes
    first and is kept), an id whose first copy is corrupt (c001: the later good copy is kept),
    and a shard cut short (what it lost is one bad record)."""
    corrupt = _png(1)[:20]
    _shard(folder / "toy-train-0000.tar.gz", _samples([f"a{i:03d}" for i in range(20)] + ["c001"],
                                                      {"a005": corrupt, "c001": corrupt}))
    _shard(folder / "toy-train-0001.tar", _samples([f"b{i:03d}" for i in range(10)] + ["c001"]))
    _shard(folder / "toy-test-0000.tar", _samples([f"t{i:03d}" for i in range(10)] + ["b003"], {"b003": _png(200)}))
    cut = folder / "toy-train-0002.tar"
    _shard(cut, _samples([f"d{i:03d}" for i in range(3)]))
    cut.write_bytes(cut.read_bytes()[:1500])
    return folder


def _quarantine(result) -> list[dict]:
    if result.quarantine_path is None:
        return []
    return [json.loads(line) for line in result.quarantine_path.read_text().splitlines()]


def _same_dataset(local, by_ray, local_store: DatasetStore, ray_store: DatasetStore) -> None:
    """Version id, rows (in the same stored order), splits, channels, quarantine and manifest."""
    assert by_ray.version == local.version
    assert (by_ray.rows, by_ray.splits, by_ray.channels, by_ray.created) == (local.rows, local.splits, local.channels, True)
    assert _quarantine(by_ray) == _quarantine(local)
    local_version, ray_version = local_store.resolve(local.name), ray_store.resolve(by_ray.name)
    assert ray_version.read().equals(local_version.read())
    volatile = ("created_at", "files")
    assert {k: v for k, v in ray_version.manifest.items() if k not in volatile} == {
        k: v for k, v in local_version.manifest.items() if k not in volatile}
    assert not list(ray_store.root.glob(f"{by_ray.name}/.tmp-*"))


def _oversized_shards(folder: Path) -> bytes:
    """Two more shards, each with a member above a 2000-byte data.max_member_bytes: in the plain
    tar it is skipped and the rest read (e000-e003); in the .gz one the samples behind it (f002)
    are not reached."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(buffer, format="PNG")
    big = buffer.getvalue()
    members = _samples([f"e{i:03d}" for i in range(4)])
    _shard(folder / "toy-train-0003.tar", members[:4] + [("big.png", big), ("big.cls", b"1")] + members[4:])
    _shard(folder / "toy-train-0004.tar.gz", _samples(["f000", "f001"]) + [("bomb.png", big)] + _samples(["f002"]))
    return big


def test_tar_shards_give_the_local_engines_dataset(tmp_path):
    source = _toy_shards(tmp_path / "shards")
    big = _oversized_shards(source)
    local_store, ray_store = DatasetStore(tmp_path / "local"), DatasetStore(tmp_path / "ray", rows_per_file=8)
    local = local_store.ingest(str(source), "toy", max_bad_fraction=0.3, max_member_bytes=2000)
    by_ray = ingest_with_ray(ray_store, source, "toy", max_bad_fraction=0.3, max_member_bytes=2000)
    _same_dataset(local, by_ray, local_store, ray_store)
    assert by_ray.splits["val"] > 0  # train and test shards: both engines carve the same val from train
    reasons = [entry["reason"] for entry in _quarantine(by_ray)]
    assert sum("cannot decode image" in r for r in reasons) == 2  # a005, and c001's first copy
    assert reasons.count("duplicate id") == 1 and any("archive damaged" in r for r in reasons)
    refused = {entry["id"]: entry["reason"] for entry in _quarantine(by_ray) if "above the limit" in entry["reason"]}
    assert set(refused) == {"big.png", "bomb.png"}  # data.max_member_bytes reaches the Ray read tasks
    assert all(f"is {len(big)} bytes, above the limit of 2000 bytes" in r for r in refused.values())
    ids = set(ray_store.resolve("toy").read(columns=["id"]).column("id").to_pylist())
    assert {"e000", "e003", "f000", "f001"} <= ids and not ids & {"big", "f002"}
    kept = ray_store.resolve("toy").read(columns=["id", "image"]).to_pydict()
    images = dict(zip(kept["id"], kept["image"], strict=True))
    assert images["b003"] == _png(200) and images["c001"] == _png(10 * 7 + 4)  # first good copies in source order
    assert all(f.startswith("part-") for f in ray_store.resolve("toy").manifest["files"])
    assert by_ray.details["engine"] == "ray" and len(by_ray.details["nodes"]) == 1

    again = local_store.resolve("toy")
    other = ingest_with_ray(local_store, source, "toy", max_bad_fraction=0.3, max_member_bytes=2000)  # the local engine's store
    assert (other.version, other.created) == (again.version, False)
    assert local_store.ingest(str(source), "toy", max_bad_fraction=0.3, max_member_bytes=2000).created is False


def test_image_folder_gives_the_local_engines_dataset(tmp_path):
    source = tmp_path / "folder"
    for c, cls in enumerate(["cat", "dog", "emu"]):
        (source / cls).mkdir(parents=True)
        for i in range(9):
            (source / cls / f"{i:02d}.png").write_bytes(_png(c * 40 + i, rgb=c == 2))
    (source / "dog" / "bad.png").write_bytes(b"not an image")
    local_store, ray_store = DatasetStore(tmp_path / "local"), DatasetStore(tmp_path / "ray")
    local = local_store.ingest(str(source), "pets", max_bad_fraction=0.1)
    by_ray = ingest_with_ray(ray_store, source, "pets", max_bad_fraction=0.1)
    _same_dataset(local, by_ray, local_store, ray_store)
    assert (by_ray.rows, by_ray.quarantined, by_ray.channels) == (27, 1, 3)
    assert ray_store.resolve("pets").class_names == ["cat", "dog", "emu"]


def _tsv(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def test_text_files_give_the_local_engines_dataset(tmp_path):
    spec = TextSourceSpec(text_columns=(1, 2), score_column=3, id_column=0)
    source = tmp_path / "pairs"
    _tsv(source / "pairs-train.tsv", [f"p{i}\tfirst {i}\tsecond {i}\t{i % 5}" for i in range(30)]
         + ["p3\tagain\tdup\t1", "p99\t \tempty text1\t2", "p98\tno score\tx\tfive"])
    _tsv(source / "pairs-test.tsv", [f"q{i}\tone {i}\ttwo {i}\t{i / 4}" for i in range(12)] + ["p7\tdup\tacross files\t1"])
    local_store, ray_store = DatasetStore(tmp_path / "local"), DatasetStore(tmp_path / "ray")
    local = local_store.ingest_text(source, "pairs", spec, max_bad_fraction=0.2)
    by_ray = ingest_with_ray(ray_store, source, "pairs", text_spec=spec, max_bad_fraction=0.2)
    _same_dataset(local, by_ray, local_store, ray_store)
    # pairs-test.tsv is read first, so its p7 is kept and the train file's p7 is the duplicate. The
    # files name train and test only: both engines carve the same tenth of train, by id, into val.
    assert (by_ray.rows, by_ray.quarantined, by_ray.splits) == (42, 4, {"train": 26, "val": 3, "test": 13})
    assert by_ray.channels is None
    assert ingest_with_ray(local_store, source, "pairs", text_spec=spec, max_bad_fraction=0.2).created is False


def test_too_many_bad_records_publish_nothing(tmp_path):
    source = _toy_shards(tmp_path / "shards")
    store = DatasetStore(tmp_path / "store")
    kept = store.ingest(str(source), "toy", max_bad_fraction=0.3)
    (source / "extra-train.tar").write_bytes(b"garbage" * 100)  # another damaged shard
    (source / "more-train.tar").write_bytes(b"")
    before = sorted(p.relative_to(store.root) for p in store.root.rglob("*") if "quarantine" not in p.parts)
    with pytest.raises(IngestError, match="max_bad_fraction") as raised:
        ingest_with_ray(store, source, "toy", max_bad_fraction=0.05)
    assert "-failed.jsonl" in str(raised.value)
    after = sorted(p.relative_to(store.root) for p in store.root.rglob("*") if "quarantine" not in p.parts)
    assert after == before and store.latest("toy") == kept.version


def test_a_damaged_gzip_text_file_fails_with_its_name(tmp_path):
    source = tmp_path / "pairs"
    _tsv(source / "a-train.tsv", [f"p{i}\tx {i}\ty {i}" for i in range(5)])
    good = gzip.compress(("\n".join(f"g{i}\tx\ty" for i in range(2000)) + "\n").encode())
    (source / "b-train.tsv.gz").write_bytes(good[: len(good) // 2])
    store = DatasetStore(tmp_path / "store")
    with pytest.raises(IngestError, match="b-train.tsv.gz"):
        ingest_with_ray(store, source, "pairs", text_spec=TextSourceSpec(text_columns=(1, 2), id_column=0))
    assert store.latest("pairs") is None and not list((tmp_path / "store").rglob("*.parquet"))


@pytest.mark.slow
def test_clpipe_ingest_engine_ray_publishes_the_local_version(cli_ingest):
    root, source, started = cli_ingest
    summary = last_json(started.result())
    local = DatasetStore(root / "local").ingest(str(source), "toy", max_bad_fraction=0.3)
    assert (summary["version"], summary["rows"], summary["quarantined"]) == (local.version, local.rows, local.quarantined)
    assert summary["details"]["engine"] == "ray" and summary["created"] is True
