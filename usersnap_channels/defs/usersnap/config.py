"""Run config of the feedback import: the knobs a run may set (never credentials)."""

from typing import Any

import dagster as dg
from pydantic import Field

#: The step (op) that imports feedback: its config is `FeedbackImportConfig`.
IMPORT_STEP = "usersnap_feedback"


class FeedbackImportConfig(dg.Config):
    """Run knobs for the feedback import (never credentials: those stay in the environment)."""

    only_missing: bool = Field(
        default=False,
        description="Skip (source, project, day) units already imported, except today and yesterday, which "
        "are always fetched again. `usersnap-channels sync` and the sensors set this; a backfill launched "
        "from the UI re-imports every selected day.",
    )
    source_ids: list[str] = Field(
        default_factory=list, description="Only these sources (ids from the `sources` table); empty = all."
    )
    workers: int = Field(
        default=4, ge=1, le=32, description="Parallel fetch workers (processes for big imports, at most one per CPU)."
    )


def imported_source_ids(run_config: dict[str, Any] | None) -> list[str]:
    """The `source_ids` a stored run's import step was limited to (empty: every connected source)."""
    op_config = ((run_config or {}).get("ops") or {}).get(IMPORT_STEP) or {}
    return list((op_config.get("config") or {}).get("source_ids") or [])
