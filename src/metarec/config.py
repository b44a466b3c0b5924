"""Run configuration: one pydantic model, loadable from YAML and overridable from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from metarec.data.loaders import ColumnMap
from metarec.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Source of the interactions and the filters applied to them."""

    dataset: str = Field(
        "ml-100k", description="Dataset name, or a path to a folder or table file."
    )
    data_dir: Path | None = Field(None, description="Folder searched first for the dataset folder.")
    format: Literal["auto", "movielens-100k", "movielens-dat", "recbole", "table"] = "auto"
    separator: str | None = Field(None, description="Column separator of a CSV/TSV table.")
    columns: ColumnMap | None = Field(
        None, description="Column names of a table: user, item, rating, timestamp."
    )
    rating_threshold: float | None = Field(
        None, description="Keep interactions rated at least this."
    )
    min_user_interactions: int = Field(0, ge=0, description="k-core threshold on users.")
    min_item_interactions: int = Field(0, ge=0, description="k-core threshold on items.")


class ProtocolConfig(_Section):
    """Evaluation protocols fewshot-v1 and interactive-v1."""

    shots: list[int] = Field([1, 3, 5, 10, 20], description="Support sizes K of fewshot-v1.")
    headline_shots: int = Field(5, ge=1, description="K used for model selection and headlines.")
    interactive_shots: int = Field(
        5, ge=1, description="History length at the start of interactive-v1."
    )
    rounds: int = Field(10, ge=1, description="Slates shown per user in interactive-v1.")
    slate_size: int = Field(10, ge=1, description="Items per slate.")
    saved_items: int = Field(
        100, ge=1, description="Items per user written to recommendations/*.jsonl."
    )

    @field_validator("shots")
    @classmethod
    def _positive_shots(cls, shots: list[int]) -> list[int]:
        if not shots or min(shots) < 1:
            raise ValueError(f"shots must be a non-empty list of positive integers; got {shots}")
        return sorted(set(shots))

    @model_validator(mode="after")
    def _headline_in_shots(self) -> ProtocolConfig:
        if self.headline_shots not in self.shots:
            raise ValueError(
                f"headline_shots={self.headline_shots} must be one of shots {self.shots}"
            )
        return self


class ModelConfig(_Section):
    """Policy network over the user's tokens."""

    encoder: Literal["transformer", "gru", "pool", "none"] = Field(
        "transformer",
        description="Sequence encoder; 'pool' reads pooled item embeddings alone, 'none' "
        "scores by item bias and the ridge head alone (needs ridge_head).",
    )
    dim: int = Field(64, ge=8, description="Embedding and hidden size.")
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    max_tokens: int = Field(160, ge=8, description="Most recent tokens the policy reads.")
    ridge_head: bool = Field(
        False,
        description="Add a closed-form ridge regression over the session's feedback to the "
        "scores (a base learner solved per user, with meta-learned features and prior).",
    )
    ridge_dim: int = Field(
        32,
        ge=2,
        description="Feature size of the ridge head (metarec simulate chooses it from "
        "baselines.dims instead).",
    )
    ridge_slate_size: int | None = Field(
        None,
        ge=1,
        description="Read the tokens after the history as slates of this size, so the ridge "
        "head learns a skip weight per slate position and a discount per slate shown.",
    )

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> ModelConfig:
        if self.encoder == "transformer" and self.dim % self.heads:
            raise ValueError(f"dim={self.dim} must be a multiple of heads={self.heads}")
        if self.encoder == "none" and not self.ridge_head:
            raise ValueError(
                "model.encoder 'none' scores items through the ridge head alone; set "
                "model.ridge_head=true or choose the encoder transformer, gru or pool"
            )
        return self


class PretrainConfig(_Section):
    """Supervised pre-training on training users' histories."""

    epochs: int = Field(30, ge=0)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    samples_per_user: int = Field(
        4, ge=1, description="Support sets drawn per training user per epoch."
    )
    max_shots: int = Field(20, ge=1, description="Support sizes are drawn from 1..max_shots.")
    feedback_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of samples that also carry simulated click/skip tokens."
    )
    patience: int = Field(8, ge=1, description="Epochs without validation gain before stopping.")
    keep_best: bool = Field(
        True, description="Keep the best validation epoch; false keeps the last epoch."
    )


class RLConfig(_Section):
    """Meta-RL across user tasks: REINFORCE with a learned baseline, or click-model fitting."""

    objective: Literal["reinforce", "clicks"] = Field(
        "reinforce",
        description="'reinforce': policy gradient on episode rewards; 'clicks': fit the scores "
        "to the clicks of simulated users (simulators only, see metarec.meta.clicks).",
    )
    iterations: int = Field(60, ge=0)
    batch_size: int = Field(64, ge=1, description="User tasks per policy-gradient update.")
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0, description="Decoupled weight decay (AdamW).")
    gamma: float = Field(0.9, ge=0, le=1)
    policy_coef: float = Field(1.0, ge=0, description="Weight of the policy-gradient term.")
    value_coef: float = Field(0.5, ge=0)
    temperature: float = Field(
        0.5, gt=0, description="Logits are divided by this before slates are sampled."
    )
    entropy_coef: float = Field(1e-3, ge=0)
    supervised_coef: float = Field(
        1.0, ge=0, description="Weight of the next-items loss on the states the rollouts visit."
    )
    eval_every: int = Field(10, ge=1)
    keep_best: bool = Field(
        True, description="Keep the best validation iteration; false keeps the last one."
    )


class AdaptConfig(_Section):
    """First-order MAML: per-user gradient steps on the support set at test time."""

    steps: int = Field(
        0, ge=0, description="Gradient steps per user at test time; 0 turns MAML off."
    )
    lr: float = Field(0.05, gt=0)
    meta_iterations: int = Field(60, ge=0, description="First-order MAML updates during training.")
    batch_size: int = Field(32, ge=1)


class BaselineConfig(_Section):
    """Grids searched on validation users for each baseline."""

    ease_lambdas: list[float] = [10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2000.0]
    knn_neighbors: list[int] = [20, 50, 100, 200, 0]
    knn_shrink: list[float] = [0.0, 10.0, 50.0]


class RunConfig(_Section):
    """Everything one ``metarec run`` needs; saved as ``config.yaml`` with each run."""

    name: str = "ml-100k"
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of every random draw.")
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda:0.")
    threads: int | None = Field(
        None, ge=1, description="torch CPU threads; default leaves torch's choice."
    )
    data: DataConfig = DataConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    rl: RLConfig = RLConfig()
    adapt: AdaptConfig = AdaptConfig()
    baselines: BaselineConfig = BaselineConfig()

    @model_validator(mode="after")
    def _maml_needs_state(self) -> RunConfig:
        if self.adapt.steps > 0 and self.model.encoder == "none":
            raise ValueError(
                "adapt.steps > 0 adapts the encoder's user state, which encoder 'none' lacks; "
                "set adapt.steps=0 or pick another encoder"
            )
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Build a :class:`RunConfig` from an optional YAML file and ``key.path=value`` overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = read_yaml(path)
    for override in overrides or []:
        apply_override(raw, override)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


def describe_validation_error(error: ValidationError, root: type[BaseModel] | None = None) -> str:
    """Turn the first validation error into one line that names the field and the fix."""
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    where = ".".join(location)
    if first["type"] == "extra_forbidden":
        section: type[BaseModel] = root or RunConfig
        for part in location[:-1]:
            annotation = section.model_fields[part].annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                section = annotation
        known = ", ".join(section.model_fields)
        return f"unknown config field '{where}'; valid fields here: {known}"
    if first["type"] == "value_error" and isinstance(first.get("input"), dict):
        # A section validator's message names the fields and the fix; the section's dump would not.
        reason = str(first["msg"]).removeprefix("Value error, ")
        return f"invalid config{f' section {where!r}' if where else ''}: {reason}"
    message = f"invalid config value for '{where}': {first['msg']}"
    if where:
        message += f" (got {first.get('input')!r})"
    return message


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a folder; pass a YAML file") from None
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first_line = str(error).splitlines()[0]
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            first_line += f" (line {mark.line + 1}, column {mark.column + 1})"
        raise ConfigError(f"config file {path} is not valid YAML: {first_line}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return loaded


def apply_override(
    raw: dict[str, Any], override: str, model: type[BaseModel] | None = None
) -> None:
    """Set ``raw[a][b] = value`` for an override ``a.b=value`` of the fields of ``model``."""
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override '{override}' must look like section.field=value")
    node = raw
    parts = key.strip().split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(
                f"override '{override}': '{part}' is not a section, because the config file "
                f"or an earlier override sets it to {child!r}"
            )
        node = child
    parsed = yaml.safe_load(value) if value.strip() else None
    if parsed is not None and not isinstance(parsed, str) and _is_text_field(parts, model):
        # YAML reads "2024" as a number and "a: b" as a mapping; a text field keeps the text.
        parsed = value.strip()
    node[parts[-1]] = parsed


_TEXT_ANNOTATIONS = (str, Path, str | None, Path | None)


def _is_text_field(parts: list[str], root: type[BaseModel] | None = None) -> bool:
    """Return whether the dotted path ``parts`` names a string or path field of ``root``."""
    model: type[BaseModel] = root or RunConfig
    for part in parts[:-1]:
        section = model.model_fields.get(part)
        if section is None or not isinstance(section.annotation, type):
            return False
        if not issubclass(section.annotation, BaseModel):
            return False
        model = section.annotation
    field = model.model_fields.get(parts[-1])
    return field is not None and field.annotation in _TEXT_ANNOTATIONS
