"""Service settings and API keys."""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path

from metarec.errors import ConfigError

API_KEYS_ENV = "METAREC_API_KEYS"
MAX_BATCH_EVENTS = 1000
MAX_BODY_BYTES = 1 << 20
DEFAULT_RATING_THRESHOLD = 3.0
DEFAULT_MAX_BATCH_SIZE = 64
DEFAULT_MAX_WAIT_S = 0.001
VALID_KEY = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class ServiceSettings:
    """Everything :func:`metarec.serving.app.create_app` needs besides the model."""

    run_dir: Path
    db_url: str
    api_keys: tuple[str, ...]
    rating_threshold: float = DEFAULT_RATING_THRESHOLD
    max_batch_events: int = MAX_BATCH_EVENTS
    max_body_bytes: int = MAX_BODY_BYTES
    # Recommendation requests scored together in one forward pass, and the longest
    # time a started batch keeps taking requests that are still arriving.
    max_scoring_batch: int = DEFAULT_MAX_BATCH_SIZE
    max_batch_wait_s: float = DEFAULT_MAX_WAIT_S

    def __post_init__(self) -> None:
        if not self.api_keys:
            raise ConfigError(
                f"no API key configured; pass --api-key-file FILE or set ${API_KEYS_ENV}"
            )
        for number, key in enumerate(self.api_keys, start=1):
            if not VALID_KEY.fullmatch(key):
                # The key itself is never shown, only its position in the list.
                raise ConfigError(
                    f"API key {number} is empty or has characters other than visible ASCII; "
                    "HTTP headers carry only those"
                )


def load_api_keys(key_file: Path | None) -> tuple[str, ...]:
    """Read keys from ``key_file`` (one per line, ``#`` comments) or ``$METAREC_API_KEYS``."""
    if key_file is not None:
        try:
            lines = key_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ConfigError(f"API key file {key_file} not found; check --api-key-file") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read API key file {key_file}: {error}") from None
        keys = [line.split("#", 1)[0].strip() for line in lines]
    else:
        keys = [part.strip() for part in os.environ.get(API_KEYS_ENV, "").split(",")]
    return tuple(key for key in keys if key)


def key_matches(candidate: str, keys: tuple[str, ...]) -> bool:
    """Return whether ``candidate`` equals one of ``keys``, in time independent of the match.

    Every key is compared (no early exit), each with ``hmac.compare_digest``.
    """
    given = candidate.encode("utf-8")
    found = False
    for key in keys:
        found |= hmac.compare_digest(given, key.encode("utf-8"))
    return found
