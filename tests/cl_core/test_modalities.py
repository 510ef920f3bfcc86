"""The modality records (`cl_core.modalities`), and the rule they stand for: outside that package
no code asks "image, text or interactions?" by comparing names; it reads the record."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from cl_core.config import MODALITY_DEFAULTS, InteractionsSourceSpec, TextSourceSpec, build_config
from cl_core.datasets import DatasetStore
from cl_core.evaluation.primary import PRIMARY_METRICS
from cl_core.losses.objectives import OBJECTIVES
from cl_core.modalities import MODALITIES, modality
from cl_core.modalities.record import PARTS

REPO = Path(__file__).resolve().parents[2]
# The folders whose code must not branch on a modality's name.
ROOTS = ("cl_core", "flows")
EXEMPT = REPO / "cl_core" / "modalities"
NAMES = frozenset(MODALITIES)


def _is_name(node: ast.AST) -> bool:
    """A modality name as a literal: "text", or a tuple / list / set of such names."""
    if isinstance(node, ast.Constant):
        return node.value in NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_name(element) for element in node.elts)
    return False


def _branches(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each place of `tree` that branches on, or tables by, a modality's name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(_is_name(side) for side in [node.left, *node.comparators]):
            found.append((node.lineno, "compares with a modality name"))
        elif isinstance(node, ast.match_case) and any(
            isinstance(pattern, ast.MatchValue) and _is_name(pattern.value) for pattern in ast.walk(node.pattern)
        ):
            found.append((node.pattern.lineno, "matches a modality name"))
        elif isinstance(node, ast.Dict) and sum(key is not None and _is_name(key) for key in node.keys) >= 2:
            found.append((node.lineno, "keys a table by modality names"))
    return found


def _sources() -> list[Path]:
    return [path for root in ROOTS for path in sorted((REPO / root).rglob("*.py")) if not path.is_relative_to(EXEMPT)]


def test_no_code_outside_the_records_branches_on_a_modality_name():
    offences = [
        f"{path.relative_to(REPO)}:{line}: {what}"
        for path in _sources()
        for line, what in _branches(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert not offences, "read the record (`cl_core.modalities.modality(kind)`) instead:\n" + "\n".join(offences)


@pytest.mark.parametrize(("source", "caught"), [
    ('if kind == "text": pass', True),
    ('if kind != "image": pass', True),
    ('if kind in ("text", "interactions"): pass', True),
    ('x = "interactions" if dataset.kind == other else None', False),
    ('match kind:\n    case "image": pass', True),
    ('table = {"image": 1, "text": 2}', True),
    ('columns = {"image": "none", "label": "zstd"}', False),  # a column named "image" is not a branch
    ('if kind == IMAGE.name: pass', False),
])
def test_the_check_sees_each_kind_of_branch(source, caught):
    assert bool(_branches(ast.parse(source))) is caught


def test_an_unknown_modality_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown modality 'audio' \(known: image, text, interactions\)"):
        modality("audio")


@pytest.mark.parametrize(("record", "part"), [(record, part) for record in MODALITIES.values() for part in record.parts],
                         ids=lambda value: getattr(value, "name", value))
def test_every_part_a_record_names_imports(record, part):
    assert part in PARTS
    assert record.part(part) is not None


# What each modality's dataset stores: the schema part's columns, in order ("!": never null).
STORED_COLUMNS = {
    "image": "id string!, image binary!, label int64, split string!",
    "text": "id string!, text1 string!, text2 string, score double, label int64, negatives list<item: string>, split string!",
    "interactions": "user string!, item string!, timestamp double!, rating double, split string!",
}


@pytest.mark.parametrize("name", MODALITIES)
def test_each_record_stores_its_columns(name):
    schema = modality(name).part("schema")
    assert ", ".join(f"{f.name} {f.type}{'' if f.nullable else '!'}" for f in schema) == STORED_COLUMNS[name]


def test_every_record_names_its_rows_spec_and_task():
    for record in MODALITIES.values():
        assert {"schema", "spec", "task", "rows"} <= set(record.parts), record.name
        assert record.part("spec").modality == record.name


def test_every_record_ingests_through_one_call(tmp_path):
    """The ingest flow calls each record's "ingest" part the same way (`flows.ingest_flow`); a
    source section names the record it reads."""
    for record in MODALITIES.values():
        parameters = inspect.signature(record.part("ingest")).parameters
        assert list(parameters)[:4] == ["store", "source", "name", "spec"], record.name
        assert {"max_member_bytes", "val_fraction"} <= set(parameters), record.name
    assert TextSourceSpec.modality == modality("text").name
    assert InteractionsSourceSpec.modality == modality("interactions").name
    store = DatasetStore(tmp_path)
    result = modality("image").part("ingest")(store, "digits", "d", None, limit=20, max_bad_fraction=0.05,
                                               progress=None, max_member_bytes=1 << 20, val_fraction=0.1)
    assert result.rows == 20 and store.resolve("d").kind == "image"


def test_a_text_config_gets_the_text_records_defaults():
    cfg = build_config({"data": {"modality": "text", "name": "pairs"}, "train": {"epochs": 3}})
    defaults = modality("text").defaults
    assert cfg.loss.name == defaults["loss"]["name"] and cfg.train.lr == defaults["train"]["lr"]
    assert cfg.train.epochs == 3  # what the config gives wins
    assert MODALITY_DEFAULTS == {name: record.defaults for name, record in MODALITIES.items() if record.defaults}


def test_the_primary_metrics_are_the_records():
    assert dict(PRIMARY_METRICS) == {name: record.primary for name, record in MODALITIES.items()}


def test_each_objective_form_is_one_modalitys():
    """An objective trains modality m in form f when f is in both; a form belongs to one
    modality, so an objective trains each of its modalities in exactly one way."""
    owners = {form: record.name for record in MODALITIES.values() for form in record.forms}
    assert len(owners) == sum(len(record.forms) for record in MODALITIES.values()), "a form shared by two modalities"
    for objective in OBJECTIVES.values():
        assert set(objective.forms) <= set(owners), objective.name
        assert objective.trains == {owners[form]: form for form in objective.forms}, objective.name


def test_reading_the_table_loads_neither_torch_nor_pandas():
    code = (
        "import sys, cl_core.modalities\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pandas', 'pyarrow'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", f"cl_core.modalities pulled in: {result.stdout.strip()}"
