"""Device access passwords (HJ 212 ``PW``): loading, checking, generating.

Passwords are secrets, so they never sit in the station catalog: they come from
a YAML file (a mapping MN → password, or MN → ``{password: …, sm4_key: …}``
for an HJ 212-2025 logger that encrypts, mode 0600) and from the environment
(``ENVMON_HJ212__PASSWORDS='{"MN": "pw"}'``), the environment winning.  No
function here logs or puts a password into an exception message.

HJ 212 sends ``PW`` in clear text (Table 3), so this authenticates a device
against misconfiguration and casual misuse, not against an eavesdropper.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import stat
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import yaml
from pydantic import SecretStr

from envmon.catalog import Catalog
from envmon.errors import ConfigError

from .crypto import parse_key

logger = logging.getLogger(__name__)

PASSWORD_LENGTH: Final = 6  # Table 3: PW is 6 characters
# Letters and digits only: ';', ',', '=' and '&' would break the frame.
_ALPHABET: Final = string.ascii_letters + string.digits


def normalize_mn(mn: str) -> str:
    """MNs are hexadecimal (EPC-96): compare them without regard to case."""
    return mn.strip().upper()


def load_secrets(
    path: Path | None, env_passwords: Mapping[str, SecretStr | str] | None = None
) -> dict[str, str]:
    """Passwords by MN (upper case) from the file at ``path`` and the environment.

    A missing file is not an error (the environment may hold every password).
    Raise :class:`ConfigError` for a file that is not a mapping of quoted
    strings — YAML reads an unquoted ``012345`` as the octal number 5349, so
    unquoted numbers are refused rather than guessed at.
    """
    out: dict[str, str] = {}
    if path is not None and path.exists():
        out.update(_read_file(path))
    for mn, value in (env_passwords or {}).items():
        password = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(password, str) or not password:
            raise ConfigError(f"ENVMON_HJ212__PASSWORDS: the password of MN {mn} is empty")
        out[normalize_mn(mn)] = password
    return out


def load_keys(path: Path | None) -> dict[str, bytes]:
    """SM4 keys by MN (upper case) from the secrets file's ``sm4_key`` entries
    (32 hex digits or 16 characters); a missing file means none."""
    if path is None or not path.exists():
        return {}
    return {mn: key for mn, (_, key) in _read_entries(path).items() if key is not None}


def _read_file(path: Path) -> dict[str, str]:
    return {mn: password for mn, (password, _) in _read_entries(path).items()}


def _read_entries(path: Path) -> dict[str, tuple[str, bytes | None]]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the HJ 212 secrets file: {err}") from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "hj212 secrets file=%s is readable by group or others (mode %o); chmod 600 it",
            path,
            stat.S_IMODE(mode),
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        # The YAML error quotes the offending line, which may hold a password.
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping MN → password")
    out: dict[str, tuple[str, bytes | None]] = {}
    problems: list[str] = []
    for key, value in data.items():
        if not isinstance(key, str):
            problems.append(f"an MN is not a string (write it in quotes): {key!r}")
            continue
        sm4_key: bytes | None = None
        if isinstance(value, dict):
            unknown = set(value) - {"password", "sm4_key"}
            if unknown:
                problems.append(f"MN {key}: unknown keys {sorted(map(str, unknown))}")
                continue
            raw_key = value.get("sm4_key")
            if raw_key is not None:
                try:
                    sm4_key = parse_key(raw_key) if isinstance(raw_key, str) else None
                except ValueError:
                    sm4_key = None
                if sm4_key is None:
                    problems.append(
                        f"the sm4_key of MN {key} is not 32 hex digits or 16 characters (quoted)"
                    )
                    continue
            value = value.get("password")
        if not isinstance(value, str):
            problems.append(f"the password of MN {key} is not a quoted string")
            continue
        if not value:
            problems.append(f"the password of MN {key} is empty")
            continue
        out[normalize_mn(key)] = (value, sm4_key)
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return out


def check_password(expected: str, given: str | None) -> bool:
    """Constant-time comparison (the time taken says nothing about the password)."""
    return hmac.compare_digest(expected.encode("utf-8"), (given or "").encode("utf-8"))


def new_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def generate_secrets(catalog: Catalog, path: Path) -> bool:
    """Write a random password and SM4 key for every catalog MN to ``path`` (mode 0600).

    Only when the file does not exist yet (the embedded demo, so that a
    simulator can push data); an existing file is never touched.  Return
    whether the file was created.
    """
    mns = sorted({normalize_mn(s.mn) for s in catalog.stations if s.mn})
    body = yaml.safe_dump(
        {mn: {"password": new_password(), "sm4_key": secrets.token_hex(16).upper()} for mn in mns},
        default_flow_style=False,
        allow_unicode=True,
    )
    header = (
        "# HJ 212 device access passwords (PW) and HJ 212-2025 SM4 keys, by MN. Generated by\n"
        "# envmon for the demo; replace each with what the station's data logger has.\n"
        "# The short form MN: password is accepted too.\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: never overwrite, even if another process creates it meanwhile.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(header + body)
    logger.info("hj212 secrets generated file=%s devices=%d", path, len(mns))
    return True
