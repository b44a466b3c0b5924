"""The ``metarec`` command line: run, evaluate, recommend, serve, train."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from metarec.errors import MetarecError

app = typer.Typer(
    help="Recommendation by meta-reinforcement learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
logger = logging.getLogger("metarec")

ResultT = TypeVar("ResultT")
EXIT_USAGE = 2


class _StderrHandler(logging.StreamHandler[Any]):
    """Writes each record to the current ``sys.stderr``, which CliRunner and pytest replace."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _log_handler() -> logging.Handler:
    """Return Rich's handler on a terminal, else a handler that writes one line per record."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.logging import RichHandler

        # Rich wraps records at the terminal's width for a person reading them.
        # Files and pipes get one line per record from the plain handler below.
        handler: logging.Handler = RichHandler(
            console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def _setup_logging(quiet: bool, verbose: bool = False) -> None:
    level = logging.INFO
    if quiet:
        level = logging.WARNING
    elif verbose:
        level = logging.DEBUG
    # Logs go to stderr so that stdout carries only results (JSONL of `recommend`).
    handler = _log_handler()
    root = logging.getLogger("metarec")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def _guard(action: Callable[[], ResultT]) -> ResultT:
    """Run ``action``; print a user error as one line on stderr and exit with status 2."""
    try:
        return action()
    except MetarecError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; no output folder was changed", err=True)
        raise typer.Exit(130) from None


Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Show no progress bars or info logs.")]
Device = Annotated[str | None, typer.Option(help="torch device: cpu, cuda or cuda:N.")]


@app.command()
def run(
    config: Annotated[Path | None, typer.Option(help="YAML file with RunConfig fields.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name (ml-100k, ml-1m, ml-10m) or a path.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder searched first for the dataset.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder; default runs/<name>.")] = None,
    name: Annotated[str | None, typer.Option(help="Run name.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed; the same seed gives the same metrics on CPU.")
    ] = None,
    device: Device = None,
    encoder: Annotated[
        str | None, typer.Option(help="Policy encoder: transformer, gru, pool or none.")
    ] = None,
    adapt_steps: Annotated[
        int | None, typer.Option(help="First-order MAML steps per user at test time (0 = off).")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override any config field, e.g. --set pretrain.epochs=5."),
    ] = None,
    quiet: Quiet = False,
    verbose: Annotated[bool, typer.Option(help="Log debug messages.")] = False,
) -> None:
    """Train the meta-RL agent and the baselines, evaluate them, and write a report."""
    _setup_logging(quiet, verbose)
    flags = {
        "data.dataset": dataset,
        "data.data_dir": data_dir,
        "name": name,
        "seed": seed,
        "device": device,
        "model.encoder": encoder,
        "adapt.steps": adapt_steps,
    }
    overrides = list(set_ or []) + [
        f"{key}={value}" for key, value in flags.items() if value is not None
    ]
    _guard(lambda: _run(config, overrides, out, quiet))


def _run(config_path: Path | None, overrides: list[str], out: Path | None, quiet: bool) -> None:
    from metarec.config import load_config
    from metarec.pipeline import run as run_pipeline
    from metarec.progress import RichReporter, SilentReporter

    config = load_config(config_path, overrides)
    if config.name == "ml-100k" and config.data.dataset != "ml-100k":
        config.name = Path(config.data.dataset).name
    out_dir = out or Path("runs") / config.name
    _set_threads(config.threads)
    if quiet:
        results = run_pipeline(config, out_dir, SilentReporter())
    else:
        with RichReporter() as reporter:
            results = run_pipeline(config, out_dir, reporter)
    _print_summary(results, out_dir, config.protocol.headline_shots)


def _set_threads(threads: int | None) -> None:
    from metarec.errors import ConfigError

    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1; got {threads}")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _print_summary(results: dict[str, Any], out_dir: Path, headline: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"test users: NDCG@10 at K={headline} and interactive recall")
    table.add_column("model")
    table.add_column(f"NDCG@10 K={headline}", justify="right")
    table.add_column("interactive recall", justify="right")
    fewshot = results["protocols"]["fewshot-v1"]
    interactive = results["protocols"].get("interactive-v1", {})
    for model, by_shots in fewshot.items():
        recall = interactive.get(model, {}).get("recall")
        table.add_row(
            model,
            f"{by_shots[str(headline)]['ndcg@10']:.4f}",
            "-" if recall is None else f"{recall:.4f}",
        )
    console = Console()
    console.print(table)
    timings = results.get("timings", {})
    if timings:
        parts = ", ".join(f"{k[:-2]} {v:.1f}s" for k, v in timings.items() if k.endswith("_s"))
        console.print(
            f"time: {parts}; one user's full catalog {timings['score_one_user_ms']:.2f} ms"
        )
    console.print(f"outputs in {out_dir}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="Folder written by `metarec run`.")],
    data_dir: Annotated[
        Path | None, typer.Option(help="Folder searched first for the dataset.")
    ] = None,
    device: Device = None,
    baselines: Annotated[bool, typer.Option(help="Also refit and score the baselines.")] = False,
    quiet: Quiet = False,
) -> None:
    """Re-score a saved checkpoint on the test users; write evaluation.json in RUN_DIR."""
    _setup_logging(quiet)
    _guard(lambda: _evaluate(run_dir, data_dir, device, baselines))


def _evaluate(run_dir: Path, data_dir: Path | None, device: str | None, baselines: bool) -> None:
    from metarec.evaluation.rescore import rescore_run

    results = rescore_run(run_dir, data_dir=data_dir, device=device, with_baselines=baselines)
    _print_summary(results, run_dir, results["headline_shots"])


@app.command()
def recommend(
    run_dir: Annotated[Path, typer.Argument(help="Folder written by `metarec run`.")],
    user_history: Annotated[
        Path,
        typer.Option(
            help="JSONL lines {user_id, items[, clicks, skips]}, or a CSV/TSV of user,item rows "
            "in chronological order."
        ),
    ],
    top: Annotated[int, typer.Option(min=1, help="Items to return per user.")] = 10,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write JSONL here; default stdout.")
    ] = None,
    ignore_unknown: Annotated[
        bool, typer.Option(help="Drop item ids the model never saw instead of failing.")
    ] = False,
    device: Device = None,
) -> None:
    """Rank items for the given user histories with a saved agent."""
    _setup_logging(quiet=True)
    _guard(lambda: _recommend(run_dir, user_history, top, output, ignore_unknown, device))


def _recommend(
    run_dir: Path,
    history: Path,
    top: int,
    output: Path | None,
    ignore_unknown: bool,
    device: str | None,
) -> None:
    from metarec.checkpoint import load_checkpoint
    from metarec.errors import ConfigError
    from metarec.fileio import atomic_write_text
    from metarec.histories import rank_histories, read_histories
    from metarec.meta.trainer import resolve_device

    if output is not None and output.is_dir():
        raise ConfigError(f"--output {output} is a folder; pass a file path")
    checkpoint = load_checkpoint(run_dir, resolve_device(device or "cpu"))
    users = read_histories(history, checkpoint.item_index, ignore_unknown=ignore_unknown)
    lines = [json.dumps(row, ensure_ascii=False) for row in rank_histories(checkpoint, users, top)]
    text = "\n".join(lines) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(output, text)


@app.command()
def serve(
    run_dir: Annotated[Path, typer.Argument(help="Folder written by `metarec run` or `train`.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to listen on, 1 to 65535.")] = 8000,
    db_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL of the event store; default sqlite:///RUN_DIR/events.db."
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            help="File with one API key per line; default $METAREC_API_KEYS, comma separated."
        ),
    ] = None,
    rating_threshold: Annotated[
        float, typer.Option(help="A rating at least this is a positive interaction.")
    ] = 3.0,
    threads: Annotated[
        int | None,
        typer.Option(help="torch CPU threads for scoring; default 1, see docs/serving.md."),
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Serve recommendations and record feedback events over HTTP (FastAPI on uvicorn)."""
    _setup_logging(quiet)
    _guard(lambda: _serve(run_dir, host, port, db_url, api_key_file, rating_threshold, threads))


def _serve(
    run_dir: Path,
    host: str,
    port: int,
    db_url: str | None,
    api_key_file: Path | None,
    rating_threshold: float,
    threads: int | None,
) -> None:
    import uvicorn

    from metarec.serving.app import create_app
    from metarec.serving.listen import bind_listener
    from metarec.serving.settings import ServiceSettings, load_api_keys
    from metarec.serving.store import default_sqlite_url

    # Scoring runs on one thread per micro-batch. With torch's default of one thread per
    # core, one user's scores took 8-133 ms instead of 1.1-1.7 ms on a busy 2-core machine.
    _set_threads(1 if threads is None else threads)
    settings = ServiceSettings(
        run_dir=run_dir,
        db_url=db_url or default_sqlite_url(run_dir),
        api_keys=load_api_keys(api_key_file),
        rating_threshold=rating_threshold,
    )
    # Bind first, so a busy port or a wrong host fails before the model and store load.
    listener = bind_listener(host, port)
    try:
        service_app = create_app(settings)
    except BaseException:
        listener.close()
        raise
    logger.info("serving on http://%s:%d (API docs at /docs)", host, port)
    config = uvicorn.Config(
        service_app, host=host, port=port, access_log=False, log_level="warning"
    )
    uvicorn.Server(config).run(sockets=[listener])


@app.command()
def train(
    resume: Annotated[
        Path | None, typer.Option(help="Run folder whose checkpoint training continues from.")
    ] = None,
    events: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL of the event store to train on; opened read-only."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Folder for the new checkpoint; default RUN_DIR.vN.")
    ] = None,
    epochs: Annotated[int, typer.Option(help="Passes over the logged users, at least 1.")] = 5,
    lr: Annotated[float, typer.Option(help="AdamW learning rate, above 0.")] = 3e-4,
    rating_threshold: Annotated[
        float, typer.Option(help="A rating at least this is a positive interaction.")
    ] = 3.0,
    seed: Annotated[int, typer.Option(help="Seed of the sampled cuts and of torch.")] = 0,
    device: Device = None,
    threads: Annotated[
        int | None, typer.Option(help="torch CPU threads for training; default torch's.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Continue training a checkpoint on logged events and write a new model version."""
    _setup_logging(quiet)
    _guard(lambda: _train(resume, events, out, epochs, lr, rating_threshold, seed, device, threads))


def _train(
    resume: Path | None,
    events: str | None,
    out: Path | None,
    epochs: int,
    lr: float,
    rating_threshold: float,
    seed: int,
    device: str | None,
    threads: int | None,
) -> None:
    from metarec.errors import ConfigError
    from metarec.serving.retrain import ResumeSettings, resume_training

    _set_threads(threads)
    if resume is None:
        raise ConfigError("train needs --resume RUN_DIR; train a new agent with `metarec run`")
    if events is None:
        raise ConfigError("train needs --events DB_URL, e.g. sqlite:///RUN_DIR/events.db")
    settings = ResumeSettings(
        epochs=epochs, lr=lr, rating_threshold=rating_threshold, seed=seed, device=device or "cpu"
    )
    summary = resume_training(resume, events, out, settings)
    first, last = summary["history"][0], summary["history"][-1]
    typer.echo(
        f"trained on {summary['users']} users; held-out loss {_loss(first)} -> {_loss(last)}; "
        f"model {summary['version']} in {summary['out']}"
    )


def _loss(record: dict[str, Any]) -> str:
    value = record.get("heldout_loss")
    return "n/a" if value is None else f"{value:.4f}"


def _add_simulate() -> None:
    from metarec.experiments.cli import simulate_app

    app.add_typer(simulate_app, name="simulate")


_add_simulate()


if __name__ == "__main__":
    app()
