"""Settings, from the environment (``BACKLINE_*``) with sensible defaults."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Where the data and rules live and how the service runs.

    Every field can be set from the environment, e.g. ``BACKLINE_DB=/srv/backline.duckdb``.
    """

    model_config = SettingsConfigDict(env_prefix="BACKLINE_", extra="ignore")

    db: Path = PROJECT_ROOT / "data" / "backline.duckdb"
    # PostgreSQL as the system of record (several app servers or sites): postgresql://user@host/db.
    # Unset, the DuckDB file above is the store.
    database_url: str | None = None
    pg_pool_size: int = 10
    # How long to wait for the PostgreSQL server before saying it is unavailable.
    pg_connect_timeout_seconds: float = 5.0
    rules_dir: Path = PROJECT_ROOT / "rules"
    sample_dir: Path = PROJECT_ROOT / "sample_data"
    # Naive timestamps are wall-clock times in this zone; aware ones are converted to it.
    timezone: str = "Europe/London"
    # Working hours for "in hours" versus "out of hours" (weekdays, local time).
    in_hours_start: int = 8
    in_hours_end: int = 18
    # How long to wait for a database file locked by another process before saying so.
    lock_timeout_seconds: float = 30.0
    # How long a write keeps retrying after losing a conflict with another write.
    write_retry_seconds: float = 30.0
    duckdb_threads: int = 2
    duckdb_memory_limit: str = "1536MB"
    # Seconds between refreshes of the triage queue.
    queue_refresh_seconds: int = 15
    # With an identity provider: the token claim that carries the Backline role, and an optional
    # YAML file mapping e-mail addresses to roles for providers that cannot send such a claim.
    role_claim: str = "backline_role"
    role_map: Path | None = None
    # Demo mode (``BACKLINE_DEMO=1``, as `make run` sets it): no sign-in, a switcher over the staff
    # of a sample made by the generator, and no other database. Never on with an identity provider.
    demo: bool = False
    # The alerts configuration (channels, contacts, rotas, escalation chains); `backline run` starts
    # the alerts worker with it. Demo mode uses the sample's (sample_data/alerts.yaml) when unset.
    alerts: Path | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        ZoneInfo(value)  # raises for an unknown zone
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def local_now() -> datetime:
    """Now, an instant in the service's time zone (to the second)."""
    return datetime.now(get_settings().tz).replace(microsecond=0)
