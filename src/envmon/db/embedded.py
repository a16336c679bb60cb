"""The embedded PostgreSQL cluster, started from the system's server binaries.

``envmon db up`` creates a cluster in ``DATA_DIR/pg`` on first use and starts it
on 127.0.0.1:``EMBEDDED_PORT`` with its Unix socket in ``DATA_DIR``; two data
dirs on two ports run side by side. PostgreSQL refuses to run as root, so when
envmon runs as root (CI, containers) the server runs as the ``postgres`` system
user that Debian's package creates.

Authentication is scram-sha-256 on TCP and on the socket: the superuser's password
is generated into ``DATA_DIR/pg-password`` (mode 0600) when the cluster is created;
a cluster created by an older envmon with ``trust`` gets one at its next start.
TimescaleDB is preloaded at every start whenever the server's binaries have it
(installed after the cluster was created included).
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from envmon.errors import EmbeddedDbError
from envmon.log import db_logger as logger
from envmon.timeutil import BEIJING_TZ_NAME

SUPERUSER = "envmon"
DATABASE = "envmon"


def find_bindir(preferred: Path | None = None) -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    ``preferred`` (the ``PG_BINDIR`` setting) wins; then ``pg_config --bindir``;
    then Debian's versioned ``/usr/lib/postgresql/N/bin`` (newest first); then
    ``PATH``.
    """
    candidates: list[Path] = []
    if preferred is not None:
        candidates.append(preferred)
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).resolve().parent)
    for c in candidates:
        if (c / "initdb").exists() and (c / "pg_ctl").exists() and (c / "postgres").exists():
            return c
    raise EmbeddedDbError(
        "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. "
        "Install Debian's 'postgresql' package (make setup does this as root), "
        "or set PG_BINDIR to their directory."
    )


def has_timescaledb(bindir: Path) -> bool:
    """Whether this server build can load the timescaledb extension."""
    pg_config = bindir / "pg_config"
    if not pg_config.exists():
        return False
    out = subprocess.run(
        [str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return False
    return bool(glob.glob(os.path.join(out.stdout.strip(), "timescaledb*.so")))


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedCluster:
    """One PostgreSQL cluster in a data directory of envmon's.

    ``tuning`` adds ``postgresql.conf`` lines at creation (the test harness turns
    fsync off; the embedded default keeps PostgreSQL's durable defaults).
    ``timescaledb``: preload the extension (None: whenever the binaries have it).
    """

    data_dir: Path
    port: int
    tuning: tuple[str, ...] = ()
    timescaledb: bool | None = None
    bindir: Path | None = None  # the server's binaries (default: found, see find_bindir)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "pg-socket"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "pg.log"

    @property
    def password_file(self) -> Path:
        return self.data_dir / "pg-password"

    def password(self) -> str | None:
        try:
            return self.password_file.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def url(self, database: str = DATABASE) -> str:
        # The generated password is hex: nothing in it needs quoting in a URL.
        pw = self.password()
        auth = f"{SUPERUSER}:{pw}" if pw else SUPERUSER
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def preloads_timescaledb(self) -> bool:
        if self.timescaledb is not None:
            return self.timescaledb
        return has_timescaledb(find_bindir(self.bindir))

    def _new_password(self) -> str:
        pw = secrets.token_hex(24)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(pw + "\n")
        os.chmod(self.password_file, 0o600)
        return pw

    # -- running the server's own tools -------------------------------------------------

    def _run_as(self) -> str | None:
        """The system user the server runs as when we are root, else None."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as err:
            raise EmbeddedDbError(
                "running as root, but there is no 'postgres' system user to run the "
                "server as (install Debian's 'postgresql' package, or run as another user)"
            ) from err
        return "postgres"

    def _cmd(self, args: list[str]) -> list[str]:
        user = self._run_as()
        if user is None:
            return args
        return ["runuser", "-u", user, "--", *args]

    def _tool(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        bindir = find_bindir(self.bindir)
        cmd = self._cmd([str(bindir / name), *args])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise EmbeddedDbError(
                f"{name} failed (exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        user = self._run_as()
        if user is not None:
            pw = pwd.getpwnam(user)
            for d in (self.socket_dir, self.pgdata):
                if d.exists():
                    os.chown(d, pw.pw_uid, pw.pw_gid)
            if not self.log_file.exists():
                self.log_file.touch()
            os.chown(self.log_file, pw.pw_uid, pw.pw_gid)
            # The server user must be able to reach the data dir through its parents.
            for parent in [self.data_dir, *self.data_dir.resolve().parents]:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, mode | 0o001)

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> bool:
        """Create the cluster if missing; True if it was created now."""
        if self.initialised:
            return False
        self._prepare_dirs()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare_dirs()
        pw = self._new_password()
        # initdb reads the password from a file (as the server user when we are root).
        pwfile = self.data_dir / "pg-initdb-pw.tmp"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(pw + "\n")
        user = self._run_as()
        if user is not None:
            os.chown(pwfile, pwd.getpwnam(user).pw_uid, -1)
        try:
            self._tool(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        conf = [
            "# envmon embedded cluster",
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.socket_dir.resolve()}'",
            f"timezone = '{BEIJING_TZ_NAME}'",
            "max_connections = 100",
            "shared_buffers = '256MB'",
            "max_wal_size = '2GB'",
        ]
        conf.extend(self.tuning)
        with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write("\n" + "\n".join(conf) + "\n")
        logger.info("embedded cluster created data_dir=%s", self.pgdata)
        return True

    def running(self) -> bool:
        if not self.initialised:
            return False
        proc = self._tool("pg_ctl", "status", "-D", str(self.pgdata), check=False)
        return proc.returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        """Start the server (idempotent) and make sure the envmon database exists."""
        self.init()
        if not self.running():
            if not port_free(self.port):
                raise EmbeddedDbError(
                    f"port {self.port} is taken by another program; set ENVMON_EMBEDDED_PORT"
                )
            self._prepare_dirs()
            # Decided at every start, not only at creation: TimescaleDB installed
            # later is picked up; the command line wins over postgresql.conf.
            options = f"-p {self.port}"
            if self.preloads_timescaledb():
                options += " -c shared_preload_libraries=timescaledb"
                options += " -c timescaledb.telemetry_level=off"
            else:
                options += " -c shared_preload_libraries=''"
            self._tool(
                "pg_ctl",
                "start",
                "-w",
                "-t",
                str(int(timeout)),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file.resolve()),
                "-o",
                options,
            )
            logger.info("embedded cluster started port=%s", self.port)
        self._wait_ready(timeout)
        if self.password() is None:
            self._require_passwords()
        self.ensure_database(DATABASE)

    def _require_passwords(self) -> None:
        """A cluster created with ``trust`` (older envmon): set a generated password and
        switch pg_hba.conf to scram-sha-256."""
        import psycopg
        from psycopg import sql

        pw = self._new_password()
        hba = self.pgdata / "pg_hba.conf"
        try:
            with psycopg.connect(
                f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres",
                autocommit=True,
            ) as conn:
                conn.execute("SET password_encryption = 'scram-sha-256'")
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(SUPERUSER), sql.Literal(pw)
                    )
                )
                conn.execute("SELECT pg_reload_conf()")
        except psycopg.Error as err:
            self.password_file.unlink(missing_ok=True)
            raise EmbeddedDbError(f"could not set the superuser's password: {err}") from err
        lines = hba.read_text(encoding="utf-8").splitlines()
        out = [
            line if line.lstrip().startswith("#") else re.sub(r"\btrust\s*$", "scram-sha-256", line)
            for line in lines
        ]
        hba.write_text("\n".join(out) + "\n", encoding="utf-8")
        self._tool("pg_ctl", "reload", "-D", str(self.pgdata))
        logger.info("embedded cluster now requires passwords (scram-sha-256)")

    def stop(self, mode: str = "fast") -> None:
        if self.running():
            self._tool("pg_ctl", "stop", "-w", "-m", mode, "-D", str(self.pgdata))
            logger.info("embedded cluster stopped port=%s", self.port)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise EmbeddedDbError(f"server on port {self.port} not ready: {err}") from err
                time.sleep(0.1)

    def ensure_database(self, name: str, template: str | None = None) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template:
                    stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                        sql.Identifier(name), sql.Identifier(template)
                    )
                conn.execute(stmt)

    def status(self) -> dict[str, object]:
        return {
            "data_dir": str(self.pgdata),
            "port": self.port,
            "initialised": self.initialised,
            "running": self.running(),
            "url": self.url(),
        }
