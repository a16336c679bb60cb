"""Reading ``config/stations.yaml`` into a ``Catalog``.

The file is edited by hand, so the loader reports every problem it finds in one
``CatalogError`` — each naming the station's id and its line — instead of
stopping at the first: fixing a file one error per run is slow.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pydantic
import yaml

from envmon.catalog.model import Catalog, Station, station_problems
from envmon.errors import CatalogError

# The C loader keeps node marks too, and is several times faster where libyaml exists.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|credential|(?:^|_)pw(?:_|$)", re.IGNORECASE)
_TOP_LEVEL_KEYS = frozenset({"stations"})


def load_catalog(path: Path) -> Catalog:
    """Load and validate the station catalog at ``path``.

    Raises ``CatalogError`` listing every problem found: unreadable file or YAML,
    missing or unknown fields, wrong types, coordinates outside the declared
    county, county not in the declared city, duplicate ids or MNs.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise CatalogError(f"{path}: cannot read the station catalog: {err}") from err
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as err:
        raise CatalogError(f"{path}: not valid YAML: {err}") from err
    finally:
        loader.dispose()

    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise CatalogError(f"{path}: expected a mapping with a 'stations:' list at the top")
    problems: list[str] = [
        f"top-level key '{key}' (line {_line(node)}): unknown (only 'stations' is expected)"
        for node, _ in root.value
        if (key := node.value) not in _TOP_LEVEL_KEYS
    ]
    seq = next((v for k, v in root.value if k.value == "stations"), None)
    entries = data.get("stations")
    if not isinstance(seq, yaml.SequenceNode) or not isinstance(entries, list):
        raise CatalogError(f"{path}: 'stations:' must be a list of stations")
    if not entries:
        raise CatalogError(f"{path}: 'stations:' is empty")

    stations: list[Station] = []
    first_id: dict[str, int] = {}
    first_mn: dict[str, tuple[str, int]] = {}
    for index, (node, raw) in enumerate(zip(seq.value, entries, strict=True), start=1):
        line = _line(node)
        ident = raw.get("id") if isinstance(raw, dict) else None
        label = (
            f"station '{ident}' (line {line})"
            if isinstance(ident, str) and ident
            else f"station #{index} (line {line})"
        )
        entry_problems = _entry_problems(node, raw)
        if isinstance(ident, str) and ident:
            if ident in first_id:
                entry_problems.append(f"duplicate id (first used at line {first_id[ident]})")
            else:
                first_id[ident] = line
        mn = raw.get("mn") if isinstance(raw, dict) else None
        if isinstance(mn, str) and mn:
            owner = first_mn.get(mn.upper())
            if owner is not None:
                entry_problems.append(
                    f"mn '{mn}' is already used by station '{owner[0]}' (line {owner[1]})"
                )
            else:
                first_mn[mn.upper()] = (str(ident), line)
        if entry_problems:
            problems.extend(f"{label}: {p}" for p in entry_problems)
        elif isinstance(raw, dict):
            stations.append(Station.model_validate(raw))

    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise CatalogError(
            f"{path}: {count} in the station catalog:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return Catalog(stations)


def catalog_to_json(catalog: Catalog) -> list[dict[str, Any]]:
    """Every station as a JSON-ready dict with all fields (``envmon stations list --json``)."""
    return [station.model_dump(mode="json") for station in catalog.stations]


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _entry_problems(node: yaml.Node, raw: Any) -> list[str]:
    if not isinstance(node, yaml.MappingNode) or not isinstance(raw, dict):
        return ["expected a mapping of field: value"]
    problems: list[str] = []
    seen: set[Any] = set()
    for key_node, _ in node.value:
        if key_node.value in seen:
            problems.append(f"field '{key_node.value}' is given twice (line {_line(key_node)})")
        seen.add(key_node.value)
    try:
        Station.model_validate(raw)
    except pydantic.ValidationError as err:
        errors = err.errors(include_url=False)
        problems.extend(_describe(e) for e in errors)
        # Cross-field checks only run inside pydantic once every field is valid;
        # run them here too so one pass reports everything.
        if all(e["loc"] for e in errors):
            problems.extend(station_problems(raw))
    return problems


def _describe(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"missing field '{loc}'"
    if kind == "extra_forbidden":
        if _SECRET_KEY.search(loc):
            return (
                f"field '{loc}' is not allowed: device passwords and other secrets never"
                " belong in the catalog (they go in the settings, ENVMON_*)"
            )
        return f"unknown field '{loc}'"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {message}" if loc else message
