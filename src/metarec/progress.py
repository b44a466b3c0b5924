"""Progress reporting that the library calls and the CLI renders."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import TaskID


class Reporter(Protocol):
    """Receives progress of long stages; the CLI shows it as Rich progress bars."""

    def start(self, stage: str, total: int) -> None: ...

    def advance(self, stage: str, **fields: float) -> None: ...

    def finish(self, stage: str) -> None: ...


class SilentReporter:
    """A reporter that shows nothing (``--quiet`` and library use)."""

    def start(self, stage: str, total: int) -> None:
        del stage, total

    def advance(self, stage: str, **fields: float) -> None:
        del stage, fields

    def finish(self, stage: str) -> None:
        del stage


class RichReporter:
    """Shows one Rich progress bar per stage with the latest loss and validation figures."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> RichReporter:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, stage: str, total: int) -> None:
        self._tasks[stage] = self._progress.add_task(stage, total=total, status="")

    def advance(self, stage: str, **fields: float) -> None:
        status = "  ".join(f"{key} {value:.4f}" for key, value in fields.items())
        self._progress.update(self._tasks[stage], advance=1, status=status)

    def finish(self, stage: str) -> None:
        task = self._tasks[stage]
        self._progress.update(task, completed=self._progress.tasks[task].total)
