"""A throwaway PostgreSQL server for the tests: Debian's binaries, ``initdb`` + ``pg_ctl``, on loopback.

``make test`` installs the ``postgresql`` package when it is missing (see the Makefile); the
server lives in a temporary directory, listens on a free 127.0.0.1 port and a private socket
directory, trusts local connections, and is stopped (immediate mode) when the session ends.
As root, the server runs as the ``postgres`` user the package creates (PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """Why no server could be started (used as the skip reason)."""


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return candidates[-1] if candidates else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    root: Path
    port: int
    run_as: list[str]
    pg_ctl: str

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://grader@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=grader dbname=postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://grader@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run([*self.run_as, self.pg_ctl, "-D", str(self.root / "data"), "-m", "immediate", "stop"], capture_output=True)


def start_postgres(root: Path) -> PostgresServer:
    """initdb a cluster under ``root`` and start it; raises PostgresUnavailable with the reason."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        raise PostgresUnavailable("PostgreSQL server binaries not found (apt-get install postgresql; `make test` does it)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable('psycopg is not installed: pip install ".[postgres]"') from None
    run_as: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root without runuser: cannot start PostgreSQL as another user")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root and there is no 'postgres' user to run the server") from None
        run_as = ["runuser", "-u", "postgres", "--"]
        os.chown(root, pw.pw_uid, pw.pw_gid)
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if run_as:
        os.chown(sockets, pw.pw_uid, pw.pw_gid)
    port = free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*run_as, *args], capture_output=True, text=True)
        if done.returncode != 0:
            log = (root / "server.log").read_text() if (root / "server.log").exists() else ""
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {done.stderr.strip() or done.stdout.strip()} {log[-2000:]}")

    run(initdb, "-D", str(data), "-U", "grader", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    run(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60", "start")
    return PostgresServer(root, port, run_as, pg_ctl)


@contextmanager
def throwaway_postgres() -> Iterator[PostgresServer]:
    """A server in a new temporary directory, stopped and removed afterwards (also when start-up fails).

    Not under pytest's temporary directories: those are private to root, and the server runs as 'postgres'.
    """
    root = Path(tempfile.mkdtemp(prefix="grader-pg-"))
    try:
        server = start_postgres(root)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
