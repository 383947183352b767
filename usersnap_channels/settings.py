"""Constants, and every environment knob of the project in one validated settings object."""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_BASE_URL = "https://platform.usersnap.com/v0.1"
DEFAULT_DB_PATH = "data/channels.duckdb"
DEFAULT_JWT_ID_ENV = "USERSNAP_JWT_ID"
DEFAULT_JWT_SECRET_ENV = "USERSNAP_JWT_SECRET"

#: Items per page when listing feedback; the product contract fixes it at 50.
PAGE_SIZE = 50
#: Lifetime of each minted JWT. Usersnap accepts up to 5 minutes; shorter is safer.
TOKEN_LIFETIME_S = 60


class SettingsError(ValueError):
    """An environment variable holds a value the project cannot use (the message names it)."""


class Settings(BaseModel):
    """The environment knobs (the README's Environment table). Read afresh by `load()`, so a changed
    environment (a test, a re-exported variable) is seen at once; secrets are not here: sources name
    the variables that hold them."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    base_url: str = Field(DEFAULT_BASE_URL, alias="USERSNAP_BASE_URL", min_length=1, description="Usersnap API root.")
    db: Path = Field(Path(DEFAULT_DB_PATH), alias="USERSNAP_CHANNELS_DB", description="The channels DuckDB file.")
    sensor_interval_s: int = Field(
        180, alias="USERSNAP_SENSOR_INTERVAL_S", gt=0, description="Seconds between sync-sensor ticks."
    )
    lock_timeout_s: float = Field(
        30.0,
        alias="USERSNAP_CHANNELS_LOCK_TIMEOUT_S",
        ge=0,
        allow_inf_nan=False,
        description="How long the CLI waits for a DuckDB file another program holds.",
    )
    themes: bool = Field(
        True,
        alias="USERSNAP_CHANNELS_THEMES",
        description="`off` skips embedding and theming (an import-only deployment; most import tests).",
    )
    duckdb_memory_limit: str = Field(
        "64MB",
        alias="USERSNAP_CHANNELS_DUCKDB_MEMORY_LIMIT",
        min_length=1,
        description=(
            "DuckDB memory_limit of the pipeline's own connections (it spills to disk beyond); an import's "
            "connections close under 32MB at most."
        ),
    )
    report_dir: Path | None = Field(
        None,
        alias="USERSNAP_CHANNELS_REPORT_DIR",
        description="Folder of the HTML reports; unset: `reports/` in the DuckDB file's folder.",
    )
    report_rating_fields: str = Field(
        "",
        alias="USERSNAP_CHANNELS_REPORT_RATING_FIELDS",
        description="Comma-separated form field names the report treats as ratings/NPS (else a rule picks them).",
    )


_EXPECTED = {
    "USERSNAP_SENSOR_INTERVAL_S": "a whole number of seconds > 0",
    "USERSNAP_CHANNELS_LOCK_TIMEOUT_S": "a number of seconds >= 0",
    "USERSNAP_CHANNELS_THEMES": "on or off",
}


def load() -> Settings:
    """The settings from the environment now; a `SettingsError` naming the variable when one is unusable.

    An empty variable counts as unset (the default applies), as a shell's `VAR=` usually means."""

    env = {name: value for name in _names() if (value := os.environ.get(name, "").strip())}
    try:
        return Settings.model_validate(env)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0])
        wanted = _EXPECTED.get(name, "a valid value")
        raise SettingsError(f"{name} must be {wanted}, not {env.get(name)!r} ({error['msg']}).") from None


def _names() -> list[str]:
    return [field.alias for field in Settings.model_fields.values() if field.alias]


def base_url() -> str:
    """The Usersnap API root, from `USERSNAP_BASE_URL`."""
    return load().base_url


def db_path() -> Path:
    """The DuckDB file, from `USERSNAP_CHANNELS_DB` (relative paths are relative to the working dir)."""
    return load().db


def report_dir(db: Path | str | None = None) -> Path:
    """Where reports go: `USERSNAP_CHANNELS_REPORT_DIR`, else `reports/` beside the DuckDB file (`db`, or the
    configured one), so a report sits next to the data it shows (`data/reports/` by default)."""
    config = load()
    if config.report_dir is not None:
        return config.report_dir
    return Path(db if db is not None else config.db).parent / "reports"


def report_path(channel: str | None, db: Path | str | None = None) -> Path:
    """The default report file of a channel (`<report dir>/<channel slug>.html`), or of every channel."""
    return report_dir(db) / f"{slug(channel) if channel else 'all-channels'}.html"


def slug(name: str) -> str:
    """A file name for a channel name: lower case letters, digits and dashes (never empty)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "channel"
