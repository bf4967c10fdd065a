"""A real PostgreSQL server for the tests: its own cluster, port and socket directory, on loopback.

``initdb`` and ``pg_ctl`` from the Debian ``postgresql`` package (``make test`` installs it when it
is missing) run as the ``postgres`` user through ``runuser`` when the tests run as root, as the
current user otherwise. The cluster lives in a temporary directory and is removed when the server
stops. A server that cannot be started raises :class:`PostgresUnavailable` with the reason and the
server's own log: the fixtures let it fail the run, never skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


class PostgresUnavailable(RuntimeError):
    pass


def _bindir() -> Path:
    for name in ("pg_ctl", "initdb"):
        found = shutil.which(name)
        if found and (Path(found).resolve().parent / "postgres").exists():
            return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if versions:
        return Path(versions[-1]).parent
    raise PostgresUnavailable("no PostgreSQL server binaries (initdb, pg_ctl, postgres) were found: "
                              "install the Debian package `postgresql` (`make postgresql`)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One cluster, started once; :meth:`create_database` gives each test its own database."""

    superuser = "postgres"

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="backline-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "server.log"
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self._databases = 0

    # ---- running the server's own commands as its user
    def _run(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(args[:2])} failed (exit {proc.returncode}): "
                                      f"{(proc.stderr or proc.stdout).strip()[-1500:]}{self._log_tail()}")
        return proc

    def _log_tail(self) -> str:
        try:
            return "\nserver log:\n" + self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def start(self) -> "PostgresServer":
        if self.as_root:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("there is no `postgres` user to run the server as "
                                          "(the Debian package `postgresql` creates it)") from None
            shutil.chown(self.root, "postgres")
        self.root.chmod(0o700)
        self._run("initdb", "-D", str(self.data), "-U", self.superuser, "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync")
        self.sockets.mkdir()
        if self.as_root:
            shutil.chown(self.sockets, "postgres")
        self._pg_ctl_start()
        self.wait_ready()
        return self

    def _pg_ctl_start(self) -> None:
        # Loopback only, on the test's own port and socket directory; durability is not under test
        # here (the crash tests kill the server, not the machine).
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sockets} "
                   "-c fsync=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=256MB")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresUnavailable(f"PostgreSQL on port {self.port} did not accept connections: "
                                              f"{exc}{self._log_tail()}") from None
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def kill(self) -> None:
        """Stop the server at once, as a crash would: no checkpoint, clients cut off."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop", check=False)

    def restart(self) -> None:
        self._pg_ctl_start()
        self.wait_ready()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- databases
    def url(self, database: str, user: str | None = None) -> str:
        return f"postgresql://{user or self.superuser}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its URL (as the superuser, who owns it)."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
