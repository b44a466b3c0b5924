"""End-to-end runs of the main job on real MovieLens-100K with a tiny configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from metarec.config import load_config
from metarec.pipeline import run

TINY_CONFIG = Path(__file__).parent / "configs" / "tiny.yaml"

pytestmark = pytest.mark.slow


def tiny_config(data_dir: Path, *overrides: str):
    return load_config(TINY_CONFIG, [f"data.data_dir={data_dir}", *overrides])


@pytest.fixture(scope="module")
def first_run(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "first"
    run(tiny_config(shared_data_dir), out)
    return out


def test_run_writes_every_output(first_run: Path) -> None:
    expected = [
        "config.yaml",
        "metrics.json",
        "report.md",
        "fewshot.png",
        "interactive.png",
        "training.png",
        "model.safetensors",
        "model.json",
    ]
    for name in expected:
        assert (first_run / name).is_file(), name
    for shots in (1, 3, 5, 10, 20):
        assert (first_run / "recommendations" / f"fewshot-k{shots}.jsonl").is_file()


def test_run_same_seed_same_metrics(first_run: Path, shared_data_dir: Path, tmp_path: Path) -> None:
    run(tiny_config(shared_data_dir), tmp_path / "second")
    first = json.loads((first_run / "metrics.json").read_text())
    second = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert first["protocols"] == second["protocols"]


def test_run_other_seed_other_metrics(
    first_run: Path, shared_data_dir: Path, tmp_path: Path
) -> None:
    run(tiny_config(shared_data_dir, "seed=1"), tmp_path / "other")
    first = json.loads((first_run / "metrics.json").read_text())
    other = json.loads((tmp_path / "other" / "metrics.json").read_text())
    assert first["protocols"]["fewshot-v1"]["MetaRL"] != other["protocols"]["fewshot-v1"]["MetaRL"]


def test_recommendation_files_use_original_ids(first_run: Path, ml100k_log) -> None:
    lines = (first_run / "recommendations" / "fewshot-k5.jsonl").read_text().splitlines()
    metrics = json.loads((first_run / "metrics.json").read_text())
    assert len(lines) == metrics["dataset"]["test_users"]
    known_items = set(ml100k_log.item_ids)
    for line in lines:
        row = json.loads(line)
        support = ml100k_log.user_items(ml100k_log.user_index[row["user_id"]])[:5]
        support_ids = {ml100k_log.item_ids[i] for i in support}
        assert len(row["items"]) == 100
        assert len(set(row["items"])) == 100
        assert set(row["items"]) <= known_items
        assert not support_ids & set(row["items"])


def test_metrics_cover_models_and_shots(first_run: Path) -> None:
    metrics = json.loads((first_run / "metrics.json").read_text())
    fewshot = metrics["protocols"]["fewshot-v1"]
    assert set(fewshot) == {"MetaRL", "Popularity", "ItemKNN", "EASE"}
    for by_shots in fewshot.values():
        assert set(by_shots) == {"1", "3", "5", "10", "20"}
        for values in by_shots.values():
            assert 0.0 <= values["ndcg@10"] <= 1.0
    interactive = metrics["protocols"]["interactive-v1"]
    for result in interactive.values():
        assert len(result["clicks_per_round"]) == 10
        assert 0.0 <= result["recall"] <= 1.0
    assert set(metrics["timings"]) >= {"data_s", "training_s", "evaluation_s", "score_one_user_ms"}


def test_failed_run_keeps_previous_outputs(first_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "kept"
    out.mkdir()
    (out / "metrics.json").write_text("previous")
    config = load_config(TINY_CONFIG, ["data.dataset=no-such-dataset", f"data.data_dir={tmp_path}"])
    with pytest.raises(Exception, match="no-such-dataset"):
        run(config, out)
    assert (out / "metrics.json").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


def test_run_with_adaptation_steps(shared_data_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(
        shared_data_dir, "adapt.steps=1", "adapt.meta_iterations=2", "adapt.batch_size=4"
    )
    results = run(config, tmp_path / "maml")
    assert "maml" in results["training"]
    saved = json.loads((tmp_path / "maml" / "model.json").read_text())
    assert saved["config"]["adapt"]["steps"] == 1


def test_run_gru_encoder(shared_data_dir: Path, tmp_path: Path) -> None:
    results = run(tiny_config(shared_data_dir, "model.encoder=gru"), tmp_path / "gru")
    assert results["protocols"]["fewshot-v1"]["MetaRL"]["5"]["users"] > 0


def test_run_saves_item_titles(first_run: Path) -> None:
    metadata = json.loads((first_run / "model.json").read_text())
    titles = metadata["item_titles"]
    assert titles["50"].startswith("Star Wars")
    assert set(titles) <= set(metadata["item_ids"])
