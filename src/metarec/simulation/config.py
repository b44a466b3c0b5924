"""Configuration of simulation experiments: the world, the episodes and the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from metarec.config import (
    ModelConfig,
    PretrainConfig,
    RLConfig,
    apply_override,
    describe_validation_error,
    read_yaml,
)
from metarec.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SyntheticConfig(_Section):
    """Size of a synthetic world of topic-preference users."""

    n_users: int = Field(1000, ge=20, description="Users drawn; split like real users.")
    n_items: int = Field(
        500, ge=40, description="Items in the catalog; each user's log contains 30 of them."
    )
    n_topics: int = Field(8, ge=2, description="Latent topics of items and users.")


class WorldConfig(_Section):
    """Source of simulated users: a response model fit on a real log, or a synthetic world."""

    source: str = Field(
        "ml-100k",
        description="'synthetic', or a dataset name (ml-100k, ml-1m, ml-10m) or path.",
    )
    data_dir: Path | None = Field(None, description="Folder searched first for the dataset.")
    response_dim: int = Field(32, ge=2, description="Latent size of the fitted response model.")
    response_epochs: int = Field(10, ge=1, description="Epochs of response-model fitting.")
    synthetic: SyntheticConfig = SyntheticConfig()


class EpisodeConfig(_Section):
    """One simulated episode: slates shown, history given, reward and quitting."""

    rounds: int = Field(20, ge=2, description="Slates per episode.")
    slate_size: int = Field(10, ge=1, description="Items per slate.")
    min_shots: int = Field(
        1, ge=0, description="Minimum number of history items an episode starts from."
    )
    max_shots: int = Field(
        10, ge=0, description="Maximum number of history items an episode starts from."
    )
    reward: Literal["click", "rating", "purchase", "revenue"] = "click"
    patience: int = Field(3, ge=1, description="Slates without a click before a user quits.")

    @model_validator(mode="after")
    def _shots_ordered(self) -> EpisodeConfig:
        if self.min_shots > self.max_shots:
            raise ValueError(
                f"min_shots={self.min_shots} must not exceed max_shots={self.max_shots}"
            )
        return self


class ShiftConfig(_Section):
    """Preference shift inside an episode."""

    step: int = Field(10, ge=1, description="First step (0-based) under the new preference.")
    span: int = Field(1, ge=1, description="Steps over which the preference moves; 1 = sudden.")
    train_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of meta-training episodes that carry a shift."
    )


class VirtualConfig(_Section):
    """The virtual-task experiment: few real users topped up with generated ones."""

    real_fraction: float = Field(0.1, gt=0, le=1, description="Share of real training users kept.")
    virtual_users: int = Field(500, ge=1, description="Virtual users sampled per generator.")
    gan_steps: int = Field(1500, ge=1, description="GAN generator updates.")


class SimulationBaselineConfig(_Section):
    """Grids searched on validation episodes for each simulation baseline."""

    dims: list[int] = Field([16, 32], min_length=1, description="PureSVD embedding sizes.")
    epsilons: list[float] = Field([0.0, 0.05, 0.1], min_length=1)
    ridges: list[float] = Field([3.0, 10.0, 30.0, 100.0], min_length=1)
    prior_strengths: list[float] = Field([3.0, 10.0, 30.0, 100.0], min_length=1)
    noises: list[float] = Field([0.01, 0.03, 0.1, 0.3], min_length=1)
    alphas: list[float] = Field([0.01, 0.03, 0.1, 0.3], min_length=1)
    dqn_lrs: list[float] = Field(
        [3e-5, 1e-3],
        min_length=1,
        description="DQN learning rates tried; the smaller ones explore less (epsilon 0.1).",
    )
    dqn_steps: int | None = Field(
        None, ge=1, description="DQN environment steps; default matches the agent's slates."
    )


class SimulationConfig(_Section):
    """Everything one ``metarec simulate`` command needs; saved with each experiment."""

    name: str = "simulation"
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of every random draw.")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads.")
    world: WorldConfig = WorldConfig()
    episode: EpisodeConfig = EpisodeConfig()
    shift: ShiftConfig = ShiftConfig()
    virtual: VirtualConfig = VirtualConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig(epochs=15, patience=4)
    rl: RLConfig = RLConfig(iterations=60, batch_size=32, lr=3e-4, eval_every=10)
    eval_users: int | None = Field(
        None, ge=10, description="Cap on held-out users per evaluation; default all."
    )
    baselines: SimulationBaselineConfig = SimulationBaselineConfig()
    baseline_trials: int = Field(
        1, ge=1, description="Validation episodes per user when tuning the baselines."
    )

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_simulation_config(
    path: Path | None = None, overrides: list[str] | None = None
) -> SimulationConfig:
    """Build a :class:`SimulationConfig` from an optional YAML file and ``a.b=value`` overrides."""
    raw: dict[str, Any] = {} if path is None else read_yaml(path)
    for override in overrides or []:
        apply_override(raw, override, SimulationConfig)
    try:
        return SimulationConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, SimulationConfig)) from None
