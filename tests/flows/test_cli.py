"""The command line's contract: help, early config errors, clear failures that lose nothing."""

from __future__ import annotations

import pytest

from flows.cli import _metric_lines, build_parser, main
from tests.conftest import clpipe, last_json


@pytest.mark.parametrize("command", ["ingest", "train", "evaluate", "export", "reembed", "refresh", "table", "recommend",
                                     "schedule", "run"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--workspace" in text and "--json" in text


@pytest.mark.parametrize("flags,field", [
    (["--temperature", "0"], "loss.temperature"),
    (["--batch-size", "1"], "train.batch_size"),
    (["--workers", "0"], "train.workers"),
])
def test_bad_config_fails_before_any_service_starts(flags, field, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PREFECT_HOME", raising=False)
    code = main(["train", "--dataset", "digits", *flags, "--workspace", str(tmp_path / "ws")])
    assert code == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "ws").exists()  # nothing was created, nothing started


@pytest.mark.parametrize("model,field", [
    ("{backbone: vgg16}", "known backbones: resnet, efficientnet-lite0"),
    ("{backbone: efficientnet-lite0}", "data.image_size 8 is below the minimum 32"),
    ("{pretrained: true}", "model.pretrained is true, but backbone 'resnet' has no pretrained weights"),
])
def test_a_backbone_the_config_cannot_train_fails_before_any_service_starts(model, field, tmp_path, capsys):
    config = tmp_path / "backbone.yaml"
    config.write_text(f"model: {model}\n")
    assert main(["run", "--config", str(config), "--workspace", str(tmp_path / "ws")]) == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("command", ["export", "reembed"])
@pytest.mark.parametrize("flags,field", [
    (["--engine", "spark"], "export.engine: Value error, engine must be one of ('local', 'ray'), got 'spark'"),
    (["--engine", "ray", "--actors", "0"], "export.actors"),
    (["--num-gpus", "-1"], "export.num_gpus"),
])
def test_a_bad_export_engine_fails_before_any_service_starts(command, flags, field, tmp_path, capsys):
    code = main([command, "--model", "m@champion", "--dataset", "d", *flags, "--workspace", str(tmp_path / "ws")])
    assert code == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("command,flow", [("export", "flows.export_flow.export_flow"),
                                          ("reembed", "flows.reembed_flow.reembed_flow")])
def test_engine_flags_reach_the_flow(command, flow, tmp_path, monkeypatch):
    """What export and reembed hand their flow, by parameter name. That the flow's settings reach
    a Ray actor pool is proven for real by the `clpipe reembed --engine ray` of
    tests/flows/test_reembed_e2e.py (one real call: each starts a local Ray)."""
    import importlib
    import inspect

    from flows.cli import _command_config, _execute
    from flows.workspace import Workspace

    module_name, name = flow.rsplit(".", 1)
    module = importlib.import_module(module_name)
    signature = inspect.signature(getattr(module, name).fn)
    received = {}

    def receive(*a, **k):
        arguments = signature.bind(*a, **k).arguments
        received.update(arguments, **arguments["export"].model_dump())  # the export section's settings by name
        return {}

    monkeypatch.setattr(module, name, receive)
    args = build_parser().parse_args([command, "--model", "m/1", "--dataset", "d", "--engine", "ray", "--actors", "3",
                                      "--num-gpus", "0.5", "--ray-address", "10.0.0.1:6379", "--batch-size", "7"])
    workspace = Workspace.resolve(tmp_path / "ws")
    _execute(args, workspace, _command_config(args, workspace))
    assert {key: received[key] for key in ("model_ref", "dataset_name", "engine", "actors", "num_gpus", "ray_address",
                                           "batch_size")} == {
        "model_ref": "m/1", "dataset_name": "d", "engine": "ray", "actors": 3, "num_gpus": 0.5,
        "ray_address": "10.0.0.1:6379", "batch_size": 7}


@pytest.mark.parametrize("flags,field", [
    (["digits", "--engine", "spark"], "ingest.engine"),
    (["digits", "--engine", "ray", "--limit", "5"], "data.limit"),
    (["ml-100k", "--engine", "ray"], "ingest.engine 'ray' ingests images and text"),
])
def test_an_ingest_engine_that_cannot_run_fails_before_any_service_starts(flags, field, tmp_path, capsys):
    assert main(["ingest", *flags, "--workspace", str(tmp_path / "ws")]) == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "ws").exists()


def test_unknown_config_key_names_the_file_and_field(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("train:\n  epoch: 3\n")
    assert main(["run", "--config", str(config), "--workspace", str(tmp_path / "ws")]) == 2
    err = capsys.readouterr().err
    assert "typo.yaml" in err and "train.epoch" in err


@pytest.mark.slow
@pytest.mark.integration
def test_ingest_cli_versions_and_keeps_previous_state_on_failure(tmp_path):
    """The summary carries the store's version and `created`; that the same input gives the same
    version, not created again, is the store's own test (test_dataset_store.py)."""
    workspace = tmp_path / "ws"
    first = last_json(clpipe("ingest", "digits", "--name", "digits", "--limit", "200", "--json", workspace=workspace))
    assert (first["rows"], first["created"]) == (200, True)

    empty = tmp_path / "empty"
    empty.mkdir()
    failed = clpipe("ingest", str(empty), "--name", "digits", "--json", workspace=workspace)
    assert failed.returncode == 1
    assert str(empty) in failed.stderr
    assert (workspace / "datasets" / "digits" / "LATEST").read_text().strip() == first["version"]


def test_a_new_source_without_a_name_gets_its_folder_name(tmp_path):
    from flows.cli import _config

    shards = tmp_path / "my shards"
    args = build_parser().parse_args(["run", "--source", str(shards)])
    assert _config(args).data.name == "my-shards"
    named = build_parser().parse_args(["run", "--source", str(shards), "--name", "pets"])
    assert _config(named).data.name == "pets"
    assert _config(build_parser().parse_args(["run"])).data.name == "digits"


def test_ml_100k_is_an_interactions_source_of_its_own_name():
    from cl_core.config import InteractionsSourceSpec
    from flows.cli import _config
    from flows.ingest_flow import source_specs

    data = _config(build_parser().parse_args(["ingest", "ml-100k"])).data
    assert (data.modality, data.name, data.source) == ("interactions", "ml-100k", "ml-100k")
    specs = source_specs(data)
    assert type(specs["source_spec"]) is InteractionsSourceSpec and specs["source_spec"] is data.interactions
    digits = _config(build_parser().parse_args(["ingest", "digits"])).data
    assert digits.modality == "image" and source_specs(digits) == {"source_spec": None, "max_member_bytes": 64 * 2**20,
                                                                   "val_fraction": 0.1}


@pytest.mark.slow
@pytest.mark.integration
def test_ingest_cli_reads_movielens_100k_from_the_wheel(tmp_path):
    from cl_core.datasets import IngestError
    from cl_core.datasets.movielens import movielens_files

    try:
        movielens_files()
    except IngestError as error:
        pytest.skip(f"MovieLens 100k unavailable: {error}")
    summary = last_json(clpipe("ingest", "ml-100k", "--json", workspace=tmp_path / "ws"))
    assert (summary["name"], summary["rows"], summary["details"]["users"], summary["details"]["items"]) == (
        "ml-100k", 100_000, 943, 1_682)
    assert summary["splits"] == {"train": 98_114, "val": 943, "test": 943}
    assert summary["quarantined"] == 1 and summary["details"]["quarantined_by_table"]["items"] == 1


def test_text_column_flags_reach_the_config():
    from flows.cli import _config

    args = build_parser().parse_args([
        "ingest", "pairs.tsv.gz", "--header", "--text-columns", "sentence1,sentence2", "--score-column", "score",
        "--label-column", "3", "--id-column", "sid", "--split-column", "split",
    ])
    text = _config(args).data.text
    assert text.text_columns == ("sentence1", "sentence2") and text.header
    assert (text.score_column, text.label_column, text.id_column, text.split_column) == ("score", 3, "sid", "split")


@pytest.mark.parametrize("flag", ["--score-column", "--split-column", "--id-column", "--label-column"])
def test_a_one_column_flag_refuses_several(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["ingest", "pairs.tsv", "--text-columns", "0,1", flag, "4,5"])
    assert exit_info.value.code == 2
    assert "expected one column" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.integration
def test_ingest_cli_reads_a_gzipped_stsbenchmark_file(tmp_path):
    """sentence-transformers' stsbenchmark.tsv.gz layout: a header and a split column."""
    import gzip

    lines = ["split\tgenre\tdataset\tyear\tsid\tscore\tsentence1\tsentence2"]
    for split, count in (("train", 6), ("dev", 3), ("test", 2)):
        lines += [f"{split}\tmain-captions\tMSRvid\t2012test\t{split}{i}\t{i % 5}.0\tA man plays {i}.\tA man is playing {i}."
                  for i in range(count)]
    source = tmp_path / "stsbenchmark.tsv.gz"
    source.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    summary = last_json(clpipe(
        "ingest", str(source), "--name", "stsb", "--header", "--text-columns", "sentence1,sentence2",
        "--score-column", "score", "--id-column", "sid", "--split-column", "split", "--json",
        workspace=tmp_path / "ws",
    ))
    assert summary["rows"] == 11 and summary["splits"] == {"train": 6, "val": 3, "test": 2}


def test_train_takes_the_modality_of_the_ingested_dataset(tmp_path):
    from cl_core.datasets import DatasetStore, TextSourceSpec
    from flows.cli import _config
    from flows.workspace import Workspace

    workspace = Workspace(tmp_path / "ws").create()
    pairs = tmp_path / "faq-train.tsv"
    pairs.write_text("".join(f"question {i}\tanswer {i}\n" for i in range(8)))
    DatasetStore(workspace.datasets).ingest_text(str(pairs), "faq", TextSourceSpec(text_columns=(0, 1)))

    def config(*flags: str, yaml_text: str | None = None):
        if yaml_text is not None:
            (tmp_path / "c.yaml").write_text(yaml_text)
            flags = (*flags, "--config", str(tmp_path / "c.yaml"))
        return _config(build_parser().parse_args(["train", "--dataset", "faq", *flags]), workspace)

    plain = config()
    assert (plain.data.modality, plain.loss.name, plain.model_name) == ("text", "mnrl", "faq-text")
    assert config(yaml_text="loss:\n  name: cosent\n").loss.name == "cosent"  # no modality line needed
    # An explicit modality wins; the train flow's dataset check then names the mismatch.
    assert config(yaml_text="data:\n  modality: image\n").data.modality == "image"
    unknown = _config(build_parser().parse_args(["train", "--dataset", "nothing-here"]), workspace)
    assert unknown.data.modality == "image"


def test_the_run_summary_shows_each_split_and_the_pretrained_backbone_beside_the_fine_tuned_model():
    evaluated = {"modality": "image", "splits": ["val", "test"], "primary_metric": "knn_top1",
                 "metrics": {"val.knn_top1": 0.92, "val.linear_probe": 0.94, "test.knn_top1": 0.91,
                             "test.linear_probe": 0.93, "test.alignment": 0.5, "test.uniformity": -2.0},
                 "intervals": {"val.knn_top1": [0.9, 0.94], "test.knn_top1": [0.89, 0.93]}}
    scratch = {"raw_knn_top1": 0.37, "raw_linear_probe": 0.39}
    lines = _metric_lines(evaluated | {"baseline": {**scratch, "pretrained_knn_top1": 0.78, "pretrained_linear_probe": 0.85}})
    assert lines[0].split() == ["kNN", "top-1", "val", "0.9200", "[0.900,", "0.940]", "test", "0.9100", "[0.890,", "0.930]",
                                "pretrained", "0.7800", "raw", "pixels", "0.3700", "(test)"]
    assert lines[1].split() == ["linear", "probe", "val", "0.9400", "test", "0.9300", "pretrained", "0.8500",
                                "raw", "pixels", "0.3900", "(test)"]
    assert "pretrained" not in "".join(_metric_lines(evaluated | {"baseline": scratch}))  # trained from scratch
