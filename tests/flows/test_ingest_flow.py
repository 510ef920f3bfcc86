"""The ingest flow passes data.val_fraction to the sources, which carve val from train where they name none."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import clpipe, last_json


@pytest.mark.slow
@pytest.mark.integration
def test_clpipe_ingest_carves_val_from_a_train_and_test_folder_unless_val_fraction_is_0(tmp_path):
    source = tmp_path / "pets"
    for split, count in (("train", 40), ("test", 8)):
        for label, name in enumerate(["cat", "dog"]):
            (source / split / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(np.full((6, 5), i + 100 * label, np.uint8)).save(source / split / name / f"{i:02d}.png")
    off = tmp_path / "off.yaml"
    off.write_text("data:\n  val_fraction: 0\n", encoding="utf-8")
    carved = last_json(clpipe("ingest", str(source), "--name", "pets", "--json", workspace=tmp_path / "ws"))
    kept = last_json(clpipe("ingest", str(source), "--name", "pets-off", "--config", str(off), "--json",
                            workspace=tmp_path / "ws"))
    assert carved["splits"]["test"] == 16 and carved["splits"]["train"] + carved["splits"]["val"] == 80
    assert carved["splits"]["val"] > 0
    assert kept["splits"] == {"train": 80, "test": 16}
