"""The metarec command line, run as a user runs it: a subprocess with real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY_CONFIG = Path(__file__).parent / "configs" / "tiny.yaml"


def metarec(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "metarec.cli", *map(str, args)]
    env = {**os.environ, "METAREC_DATA_DIR": "", "COLUMNS": "200"}
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def assert_user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0]


@pytest.fixture(scope="module")
def run_dir(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    result = metarec(
        "run", "--config", TINY_CONFIG, "--data-dir", shared_data_dir, "--out", out, "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert "MetaRL" in result.stdout
    return out


@pytest.mark.slow
def test_evaluate_reproduces_run_metrics(run_dir: Path, shared_data_dir: Path) -> None:
    result = metarec("evaluate", run_dir, "--data-dir", shared_data_dir, "--quiet")
    assert result.returncode == 0, result.stderr
    run_metrics = json.loads((run_dir / "metrics.json").read_text())["protocols"]
    evaluated = json.loads((run_dir / "evaluation.json").read_text())["protocols"]
    assert evaluated["fewshot-v1"]["MetaRL"] == run_metrics["fewshot-v1"]["MetaRL"]
    assert evaluated["interactive-v1"]["MetaRL"] == run_metrics["interactive-v1"]["MetaRL"]


@pytest.mark.slow
def test_recommend_jsonl_histories(run_dir: Path, tmp_path: Path) -> None:
    histories = tmp_path / "histories.jsonl"
    rows = [
        {"user_id": "alice", "items": ["50", "172", "181"]},
        {"user_id": "bøb", "items": ["1"], "clicks": ["121"], "skips": ["300"]},
    ]
    histories.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n")
    result = metarec("recommend", run_dir, "--user-history", histories, "--top", "5")
    assert result.returncode == 0, result.stderr
    output = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["user_id"] for row in output] == ["alice", "bøb"]
    assert len(output[0]["items"]) == 5
    assert not {"50", "172", "181"} & set(output[0]["items"])
    assert not {"1", "121", "300"} & set(output[1]["items"])


@pytest.mark.slow
def test_recommend_unknown_item(run_dir: Path, tmp_path: Path) -> None:
    histories = tmp_path / "histories.jsonl"
    histories.write_text('{"user_id": "u", "items": ["50", "no-such-item"]}\n')
    result = metarec("recommend", run_dir, "--user-history", histories)
    assert_user_error(result, "no-such-item", "histories.jsonl:1", "--ignore-unknown")


@pytest.mark.slow
def test_recommend_csv_histories(run_dir: Path, tmp_path: Path) -> None:
    histories = tmp_path / "histories.csv"
    histories.write_text("user,item\n7,50\n7,172\n007,1\n")
    out = tmp_path / "ranked.jsonl"
    result = metarec("recommend", run_dir, "--user-history", histories, "--output", out)
    assert result.returncode == 0, result.stderr
    users = [json.loads(line)["user_id"] for line in out.read_text().splitlines()]
    assert users == ["7", "007"]


def test_run_missing_dataset_path(tmp_path: Path) -> None:
    result = metarec(
        "run", "--dataset", tmp_path / "missing" / "ratings.csv", "--out", tmp_path / "o"
    )
    assert_user_error(result, "missing")
    assert not (tmp_path / "o").exists()


def test_run_malformed_file(tmp_path: Path) -> None:
    table = tmp_path / "ratings.csv"
    table.write_text("user,item,rating\n1,10,5\n2,11,five\n")
    result = metarec("run", "--dataset", table, "--out", tmp_path / "o", "--quiet")
    assert_user_error(result, "ratings.csv:3", "five")


def test_run_unknown_config_field(tmp_path: Path) -> None:
    result = metarec("run", "--set", "pretrain.epoch=3", "--out", tmp_path / "o")
    assert_user_error(result, "pretrain.epoch")


def test_run_bad_config_value(tmp_path: Path) -> None:
    result = metarec("run", "--seed", "1", "--set", "model.encoder=lstm", "--out", tmp_path / "o")
    assert_user_error(result, "model.encoder", "lstm")


def test_run_unknown_device(tmp_path: Path, shared_data_dir: Path) -> None:
    result = metarec(
        "run",
        "--config",
        TINY_CONFIG,
        "--data-dir",
        shared_data_dir,
        "--device",
        "tpu:0",
        "--out",
        tmp_path / "o",
        "--quiet",
    )
    assert_user_error(result, "tpu:0")


def test_evaluate_missing_run(tmp_path: Path) -> None:
    result = metarec("evaluate", tmp_path / "nothing")
    assert_user_error(result, "nothing")


def test_run_refuses_foreign_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "important.txt").write_text("keep me")
    result = metarec("run", "--out", out)
    assert_user_error(result, "not empty")
    assert (out / "important.txt").read_text() == "keep me"


def test_run_refuses_file_as_output(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("data")
    result = metarec("run", "--out", target)
    assert_user_error(result, "is a file")
    assert target.read_text() == "data"


def test_run_refuses_working_directory(tmp_path: Path) -> None:
    result = metarec("run", "--out", ".", cwd=tmp_path)
    assert_user_error(result, "working directory")


def test_run_headline_outside_shots(tmp_path: Path) -> None:
    result = metarec("run", "--set", "protocol.headline_shots=7", "--out", tmp_path / "o")
    assert_user_error(result, "headline_shots=7")


def test_run_config_is_folder(tmp_path: Path) -> None:
    result = metarec("run", "--config", tmp_path, "--out", tmp_path / "o")
    assert_user_error(result, "is a folder")


def test_run_missing_data_dir(tmp_path: Path) -> None:
    result = metarec("run", "--data-dir", tmp_path / "absent", "--out", tmp_path / "o")
    assert_user_error(result, "data folder not found", "absent")


@pytest.mark.slow
def test_recommend_output_folder(run_dir: Path, tmp_path: Path) -> None:
    histories = tmp_path / "histories.jsonl"
    histories.write_text('{"user_id": "u", "items": ["50"]}\n')
    result = metarec("recommend", run_dir, "--user-history", histories, "--output", tmp_path)
    assert_user_error(result, "is a folder")


@pytest.mark.slow
def test_recommend_reports_dropped_ids(run_dir: Path, tmp_path: Path) -> None:
    histories = tmp_path / "histories.jsonl"
    histories.write_text('{"user_id": "u", "items": ["50", "nope", "nada"]}\n')
    result = metarec("recommend", run_dir, "--user-history", histories, "--ignore-unknown")
    assert result.returncode == 0, result.stderr
    assert "dropped 2 unknown item ids" in result.stderr


@pytest.mark.slow
def test_evaluate_rejects_other_data(run_dir: Path, shared_data_dir: Path, tmp_path: Path) -> None:
    source = shared_data_dir / "ml-100k" / "ml-100k.inter"
    lines = source.read_text().splitlines()
    other = tmp_path / "data" / "ml-100k"
    other.mkdir(parents=True)
    without_user_1 = [lines[0]] + [line for line in lines[1:] if not line.startswith("1\t")]
    (other / "ml-100k.inter").write_text("\n".join(without_user_1) + "\n")
    result = metarec("evaluate", run_dir, "--data-dir", tmp_path / "data", "--quiet")
    assert_user_error(result, "differs")
