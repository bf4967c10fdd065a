"""The alerts configuration (``alerts.yaml``): channels, contacts, rotas and escalation chains.

Validated by pydantic when the worker starts, failing closed like the rules: a file that does not
validate stops the worker with a message naming the file and the field, and nothing is sent on a
part of a configuration. Secrets (an SMTP password, a webhook's signing key) are never in the file:
it names the environment variable that holds each, and that variable must be set.

What is checked besides the shapes: every name a chain, rota or the leads use exists; a chain's
steps come later and later; a rota covers every minute of the week (a gap would mean nobody on
call); a password is never sent without TLS; no text can break out of an e-mail header.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dashboard.rules import RulesError, _loc, _read_yaml

Tier = Literal["emergency", "urgent", "soon", "routine"]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class AlertConfigError(RulesError):
    """The alerts configuration is missing, malformed or inconsistent. Names the file and the field."""


def _plain_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain line breaks or control characters")
    return value


Text = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _plain_text(value) if isinstance(value, str) else value


def _secret(variable: str | None) -> str | None:
    return os.environ.get(variable) if variable else None


class SmtpChannel(_Strict):
    """E-mail through the hospital's SMTP relay (STARTTLS by default)."""

    type: Literal["smtp"]
    host: Text
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: Text | None = None
    password_env: Name | None = None  # the environment variable holding the password
    sender: Text
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    ca_file: Path | None = None  # a CA bundle of the relay's certificate, if not a public one
    patient_identifiers: bool = False  # may this channel carry the patient's name and MRN?

    @model_validator(mode="after")
    def _credentials(self) -> "SmtpChannel":
        if (self.username is None) != (self.password_env is None):
            raise _Problem("username" if self.username is None else "password_env",
                           "username and password_env go together")
        if self.username is not None and self.security == "none":
            raise _Problem("security", "a password is never sent without TLS: use security starttls or tls")
        if "@" not in self.sender:
            raise _Problem("sender", "must be an e-mail address")
        return self

    @property
    def password(self) -> str | None:
        return _secret(self.password_env)


class WebhookChannel(_Strict):
    """An HTTP POST of a small JSON body, signed with HMAC-SHA256 (Teams, Slack, a paging gateway)."""

    type: Literal["webhook"]
    url: Annotated[str, Field(min_length=8, max_length=400, pattern=r"^https?://[^\s]+$")]
    secret_env: Name  # the environment variable holding the signing key
    timeout_seconds: float = Field(5.0, gt=0, le=60)
    patient_identifiers: bool = False

    @property
    def secret(self) -> str | None:
        return _secret(self.secret_env)


class MailboxChannel(_Strict):
    """E-mails appended to a local mbox file (a demonstration, or a test system)."""

    type: Literal["mailbox"]
    path: Path  # relative to the configuration file's folder
    patient_identifiers: bool = False


class LogChannel(_Strict):
    """A line in the worker's log (a demonstration)."""

    type: Literal["log"]
    patient_identifiers: bool = False


Channel = Annotated[Union[SmtpChannel, WebhookChannel, MailboxChannel, LogChannel], Field(discriminator="type")]


class Contact(_Strict):
    """Somebody (or a role's shared inbox or bleep) that alerts go to, and by which channel."""

    name: Text
    channel: Name
    address: Annotated[str, Field(min_length=1, max_length=400)]


class Shift(_Strict):
    """Who is on call from ``start`` to ``end`` (local time) on the days it starts; past midnight if end <= start."""

    days: list[Day] | Literal["all"] = "all"
    start: time = time(0, 0)
    end: time = time(0, 0)
    contacts: Annotated[list[Name], Field(min_length=1)]

    @property
    def weekdays(self) -> set[int]:
        return set(range(7)) if self.days == "all" else {DAYS.index(d) for d in self.days}

    def covers(self, moment: datetime) -> bool:
        """Is ``moment`` (a local time) in this shift?"""
        minute = moment.hour * 60 + moment.minute
        start = self.start.hour * 60 + self.start.minute
        end = self.end.hour * 60 + self.end.minute
        day = moment.weekday()
        if start < end:
            return day in self.weekdays and start <= minute < end
        # Runs past midnight (or all day when start == end): from start on its day to end the next day.
        return (day in self.weekdays and minute >= start) or ((day - 1) % 7 in self.weekdays and minute < end)


class Step(_Strict):
    after_minutes: int = Field(ge=0, le=10080)
    notify: Annotated[list[Name], Field(min_length=1)]  # contacts or rotas


class Chain(_Strict):
    """Who is alerted for a panel's reports of these tiers, and after how long without acknowledgement."""

    name: Name
    panels: Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(min_length=1)]
    tiers: Annotated[list[Tier], Field(min_length=1)]
    steps: Annotated[list[Step], Field(min_length=1, max_length=10)]

    @model_validator(mode="after")
    def _later_and_later(self) -> "Chain":
        times = [s.after_minutes for s in self.steps]
        later = [i for i, (a, b) in enumerate(zip(times, times[1:]), start=1) if b <= a]
        if later:
            raise _Problem(f"steps[{later[0]}].after_minutes",
                           f"steps must come later and later (after_minutes {times})")
        if "*" in self.panels and len(self.panels) > 1:
            raise _Problem("panels", '"*" (every other panel) stands alone')
        return self


class Retry(_Strict):
    attempts: int = Field(3, ge=1, le=10)  # tries of one alert before it is given up
    backoff_seconds: Annotated[list[int], Field(min_length=1)] = [60, 300]  # before the 2nd, 3rd... try

    def wait_after(self, attempt: int) -> timedelta:
        """How long after failed try number ``attempt`` the next one goes."""
        return timedelta(seconds=self.backoff_seconds[min(attempt, len(self.backoff_seconds)) - 1])


class AlertConfig(_Strict):
    # The app's address as the people alerted reach it (a link to the report is in every alert).
    app_url: Annotated[str, Field(min_length=8, max_length=200, pattern=r"^https?://[^\s]+$")]
    poll_seconds: float = Field(10.0, ge=0.2, le=300)
    # An alert that became due longer ago than this when the worker first finds it is not sent
    # (a worker started on an old database does not page people for last month's reports).
    look_back_hours: int = Field(24, ge=1, le=720)
    # Told when a tier's clock runs out unanswered, and when an alert cannot be delivered.
    leads: Annotated[list[Name], Field(min_length=1)]
    overdue_tiers: list[Tier] = ["emergency", "urgent", "soon", "routine"]
    retry: Retry = Retry()
    channels: Annotated[dict[Name, Channel], Field(min_length=1)]
    contacts: Annotated[dict[Name, Contact], Field(min_length=1)]
    rotas: dict[Name, Annotated[list[Shift], Field(min_length=1)]] = {}
    chains: list[Chain] = []

    @model_validator(mode="after")
    def _consistent(self) -> "AlertConfig":
        problems: list[tuple[str, str]] = []
        for cid, contact in self.contacts.items():
            if contact.channel not in self.channels:
                problems.append((f"contacts.{cid}.channel", f"unknown channel {contact.channel!r}"))
            elif self.channels[contact.channel].type in ("smtp", "mailbox") and not re.fullmatch(
                    r"[^@\s,;<>]+@[^@\s,;<>]+", contact.address):
                problems.append((f"contacts.{cid}.address", "must be one e-mail address for an e-mail channel"))
            if _CONTROL.search(contact.address):
                problems.append((f"contacts.{cid}.address", "must not contain line breaks or control characters"))
        both = set(self.contacts) & set(self.rotas)
        if both:
            problems.append(("rotas", f"{sorted(both)[0]!r} names both a contact and a rota"))
        for rid, shifts in self.rotas.items():
            for i, shift in enumerate(shifts):
                for j, c in enumerate(shift.contacts):
                    if c not in self.contacts:
                        problems.append((f"rotas.{rid}[{i}].contacts[{j}]", f"unknown contact {c!r}"))
            gap = _first_gap(shifts)
            if gap is not None:
                problems.append((f"rotas.{rid}", f"nobody is on call on {DAYS[gap[0]]} at {gap[1]:%H:%M}: "
                                                 "a rota must cover every hour of the week"))
        names = set(self.contacts) | set(self.rotas)
        for i, who in enumerate(self.leads):
            if who not in names:
                problems.append((f"leads[{i}]", f"unknown contact or rota {who!r}"))
        seen: dict[tuple[str, str], str] = {}
        for i, chain in enumerate(self.chains):
            for s, step in enumerate(chain.steps):
                for j, who in enumerate(step.notify):
                    if who not in names:
                        problems.append((f"chains[{i}].steps[{s}].notify[{j}]", f"unknown contact or rota {who!r}"))
            for panel in chain.panels:
                for tier in chain.tiers:
                    if (panel, tier) in seen:
                        problems.append((f"chains[{i}].panels", f"panel {panel!r} already has a {tier} chain "
                                                                f"({seen[panel, tier]!r})"))
                    seen[panel, tier] = chain.name
        if len({c.name for c in self.chains}) != len(self.chains):
            problems.append(("chains", "two chains have the same name"))
        if problems:
            raise _Problem(*problems[0])
        return self

    # ---- who is alerted
    def chain_for(self, panel: str, tier: str) -> Chain | None:
        """The panel's own chain for the tier, else the chain for every other panel (``"*"``)."""
        general = None
        for chain in self.chains:
            if tier in chain.tiers:
                if panel in chain.panels:
                    return chain
                if "*" in chain.panels:
                    general = chain
        return general

    def uncovered(self, panels: list[str], tier: str = "emergency") -> list[str]:
        """The panels with no chain for the tier (an emergency on them would go only to the leads)."""
        return [p for p in panels if self.chain_for(p, tier) is None]

    def contacts_for(self, names: list[str], moment: datetime) -> list[str]:
        """The contacts that ``names`` (contacts or rotas) reach at a local time, each once, in order."""
        out: list[str] = []
        for name in names:
            if name in self.contacts:
                found = [name]
            else:
                found = [c for shift in self.rotas[name] if shift.covers(moment) for c in shift.contacts]
            out.extend(c for c in found if c not in out)
        return out

    def channel_of(self, contact: str):
        return self.channels[self.contacts[contact].channel]


class _Problem(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _first_gap(shifts: list[Shift]) -> tuple[int, time] | None:
    """The first minute of a week (Monday 00:00 on) that no shift covers, if any."""
    monday = datetime(2024, 1, 1)  # a Monday
    for minute in range(7 * 24 * 60):
        moment = monday + timedelta(minutes=minute)
        if not any(s.covers(moment) for s in shifts):
            return moment.weekday(), moment.time()
    return None


@dataclass(frozen=True)
class LoadedConfig:
    config: AlertConfig
    path: Path

    def local_path(self, path: Path) -> Path:
        """A path of the file, relative to its folder."""
        return path if path.is_absolute() else (self.path.parent / path).resolve()


def load_alert_config(path: Path | str) -> LoadedConfig:
    """Read and validate an alerts file, or raise AlertConfigError naming the file and the field."""
    path = Path(path)
    name = path.name
    try:
        data = _read_yaml(path)
    except RulesError as exc:
        raise AlertConfigError(name, exc.field, exc.message) from None
    if not isinstance(data, dict):
        raise AlertConfigError(name, "", "the file must hold a mapping at its top level")
    try:
        config = AlertConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, _Problem):  # its field is within the model that raised it
            loc = tuple(p for p in err["loc"] if p not in ("smtp", "webhook", "mailbox", "log"))
            where = ".".join(x for x in (_loc(loc), cause.field) if x).replace(".[", "[")
            raise AlertConfigError(name, where, cause.message) from None
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field (not part of the alerts format)"
        elif err["type"] == "missing":
            message = "required field is missing"
        loc = tuple(p for p in err["loc"] if p not in ("smtp", "webhook", "mailbox", "log"))
        raise AlertConfigError(name, _loc(loc), message) from None
    for cid, channel in config.channels.items():
        variable = getattr(channel, "password_env", None) or getattr(channel, "secret_env", None)
        if variable and not os.environ.get(variable):
            field = "password_env" if getattr(channel, "password_env", None) else "secret_env"
            raise AlertConfigError(name, f"channels.{cid}.{field}",
                                   f"the environment variable {variable} is not set (secrets are never in the file)")
        if isinstance(channel, SmtpChannel) and channel.ca_file is not None:
            ca = channel.ca_file if channel.ca_file.is_absolute() else path.parent / channel.ca_file
            if not ca.is_file():
                raise AlertConfigError(name, f"channels.{cid}.ca_file", f"no such file {ca}")
    return LoadedConfig(config, path.resolve())
