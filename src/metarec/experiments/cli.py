"""``metarec simulate``: the simulation experiments as commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from metarec.progress import Reporter

simulate_app = typer.Typer(
    help="Experiments with simulated users; each writes a report with plots.",
    no_args_is_help=True,
)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML file with SimulationConfig fields.")
]
WorldOption = Annotated[
    str | None,
    typer.Option(help="'synthetic', or a dataset name (ml-100k) or path for a fitted simulator."),
]
DataDirOption = Annotated[Path | None, typer.Option(help="Folder searched first for the dataset.")]
OutOption = Annotated[
    Path | None, typer.Option(help="Output folder; default runs/simulate-<experiment>-<world>.")
]
SeedOption = Annotated[int | None, typer.Option(help="Seed of worlds, training and episodes.")]
DeviceOption = Annotated[str | None, typer.Option(help="torch device: cpu, cuda or cuda:N.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config field, e.g. --set rl.iterations=50."),
]
SIMULATION_MARKERS = ("results.json",)
SIMULATION_FILES = ("config.yaml", "results.json", "report.md", "*.png")
"""Everything an experiment writes; a folder holding anything else is not replaced."""
"""Files that mark a folder as an earlier simulation, which a new one may replace."""

QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Show no progress or info logs.")]


def _launch(
    experiment: str,
    runner: Callable[[Any, Path, Reporter], dict[str, Any]],
    options: dict[str, Any],
) -> None:
    from metarec.cli import _guard, _set_threads, _setup_logging

    _setup_logging(options["quiet"])
    _guard(lambda: _execute(experiment, runner, options, _set_threads))


def _execute(
    experiment: str,
    runner: Callable[[Any, Path, Reporter], dict[str, Any]],
    options: dict[str, Any],
    set_threads: Callable[[int | None], None],
) -> None:
    from metarec.pipeline import check_output_folder
    from metarec.progress import RichReporter, SilentReporter
    from metarec.simulation.config import load_simulation_config

    flags = {
        "world.source": options["world"],
        "world.data_dir": options["data_dir"],
        "seed": options["seed"],
        "device": options["device"],
    }
    overrides = list(options["set_"] or []) + [
        f"{key}={value}" for key, value in flags.items() if value is not None
    ]
    config = load_simulation_config(options["config"], overrides)
    world_name = Path(config.world.source).name
    config.name = f"simulate-{experiment}-{world_name}"
    out_dir = check_output_folder(
        options["out"] or Path("runs") / config.name,
        markers=SIMULATION_MARKERS,
        owned=SIMULATION_FILES,
    )
    set_threads(config.threads)
    if options["quiet"]:
        runner(config, out_dir, SilentReporter())
    else:
        with RichReporter() as reporter:
            runner(config, out_dir, reporter)
    typer.echo(f"report: {out_dir / 'report.md'}")


def _experiment(name: str, runner_path: str, doc: str) -> None:
    def command(
        config: ConfigOption = None,
        world: WorldOption = None,
        data_dir: DataDirOption = None,
        out: OutOption = None,
        seed: SeedOption = None,
        device: DeviceOption = None,
        set_: SetOption = None,
        quiet: QuietOption = False,
    ) -> None:
        module_name, function_name = runner_path.rsplit(".", 1)
        import importlib

        runner = getattr(importlib.import_module(module_name), function_name)
        _launch(name, runner, dict(locals()))

    command.__doc__ = doc
    simulate_app.command(name)(command)


_experiment(
    "adaptation",
    "metarec.experiments.adaptation.run_adaptation",
    "Normalised score on held-out users per step, the agent against every baseline.",
)
_experiment(
    "virtual",
    "metarec.experiments.virtual.run_virtual",
    "Meta-train on all, 10%, and 10% of real users plus virtual users of each generator.",
)
_experiment(
    "shift",
    "metarec.experiments.shift.run_shift",
    "Preferences switch mid-episode: reward around the switch and recovery time.",
)
_experiment(
    "regularisation",
    "metarec.experiments.regularisation.run_regularisation",
    "Training and validation curves with and without dropout, weight decay, early stopping.",
)
