"""Configuration of simulation experiments: the world, the episodes and the agent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

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
    trials: int = Field(
        10,
        ge=1,
        description="Episodes each test user plays with the switch and without it. The "
        "figures read each user's mean over them.",
    )


class VirtualConfig(_Section):
    """The virtual-task experiment: few real users topped up with generated ones."""

    real_fraction: float = Field(0.1, gt=0, le=1, description="Share of real training users kept.")
    virtual_users: int = Field(500, ge=1, description="Virtual users sampled per generator.")
    gan_steps: int = Field(1500, ge=1, description="GAN generator updates.")


class RegularisationConfig(_Section):
    """The regularised agent of the regularisation experiment; early stopping is always on."""

    dropout: float = Field(
        0.1, ge=0, lt=1, description="Share of session tokens dropped from the ridge regression."
    )
    weight_decay: float = Field(
        0.05, ge=0, description="Decoupled weight decay of item features and biases in stage 2."
    )


class SimulationBaselineConfig(_Section):
    """Grids searched on validation episodes for each simulation baseline."""

    dims: list[PositiveInt] = Field(
        [16, 32],
        min_length=1,
        description="PureSVD embedding sizes; also the agent's candidate ridge-head sizes.",
    )
    epsilons: list[Annotated[float, Field(ge=0, le=1)]] = Field([0.0, 0.05, 0.1], min_length=1)
    ridges: list[PositiveFloat] = Field(
        [3.0, 10.0, 30.0, 100.0],
        min_length=1,
        description="Ridge penalties; also the agent's candidate ridge-head penalties.",
    )
    prior_strengths: list[PositiveFloat] = Field([3.0, 10.0, 30.0, 100.0], min_length=1)
    noises: list[NonNegativeFloat] = Field([0.01, 0.03, 0.1, 0.3], min_length=1)
    alphas: list[NonNegativeFloat] = Field([0.01, 0.03, 0.1, 0.3], min_length=1)
    dqn_lrs: list[PositiveFloat] = Field(
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
    regularisation: RegularisationConfig = RegularisationConfig()
    model: ModelConfig = ModelConfig(encoder="none", ridge_head=True, max_tokens=256, dropout=0.0)
    pretrain: PretrainConfig = PretrainConfig(epochs=0, patience=4)
    rl: RLConfig = RLConfig(
        objective="clicks", iterations=1000, batch_size=64, lr=3e-3, eval_every=50
    )
    eval_users: int | None = Field(
        None, ge=10, description="Cap on held-out users per evaluation; default all."
    )
    baselines: SimulationBaselineConfig = SimulationBaselineConfig()
    validation_trials: int = Field(
        4,
        ge=1,
        description="Validation episodes per user, with the same seeds for the agent's model "
        "selection and the baselines' tuning.",
    )

    @model_validator(mode="after")
    def _ridge_reads_episode_slates(self) -> SimulationConfig:
        slate_size = self.episode.slate_size
        if self.model.max_tokens < slate_size:
            raise ValueError(
                f"model.max_tokens={self.model.max_tokens} is below episode.slate_size="
                f"{slate_size}, so the agent would never see a whole slate; raise max_tokens"
            )
        if self.model.ridge_slate_size not in (None, slate_size):
            raise ValueError(
                f"model.ridge_slate_size={self.model.ridge_slate_size} must equal "
                f"episode.slate_size={slate_size}; leave it unset to follow the episode"
            )
        return self

    @property
    def episode_tokens(self) -> int:
        """Return the most tokens a session can reach: the longest history and every slate."""
        return self.episode.max_shots + self.episode.rounds * self.episode.slate_size

    def policy_model(self) -> ModelConfig:
        """Return the policy's config; a ridge head reads the episode's slates."""
        if self.model.ridge_head and self.model.ridge_slate_size is None:
            return self.model.model_copy(update={"ridge_slate_size": self.episode.slate_size})
        return self.model

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_simulation_config(
    path: Path | None = None, overrides: list[str] | None = None
) -> SimulationConfig:
    """Build a :class:`SimulationConfig` from an optional YAML file and ``a.b=value`` overrides.

    Values given for a section change only those fields; the others keep this
    class's defaults (which differ from the section classes' own defaults,
    e.g. ``rl.objective``).
    """
    raw: dict[str, Any] = {} if path is None else read_yaml(path)
    for override in overrides or []:
        apply_override(raw, override, SimulationConfig)
    try:
        return SimulationConfig.model_validate(_merged(SimulationConfig().model_dump(), raw))
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, SimulationConfig)) from None


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``update`` written over it, section by section."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged
