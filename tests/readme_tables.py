"""The README's settings and streams tables, made from the taps themselves.

``python -m tests.readme_tables --write`` rewrites every block between
``<!-- generated: NAME -->`` and ``<!-- end: NAME -->`` in README.md;
``tests/test_readme.py`` fails when a block differs from what this makes, so the
README cannot drift from ``--about`` or from the stream declarations. A tap added to
``tests.support.TAPS`` needs its two blocks (``settings tap-x``, ``streams tap-x``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import typing as t

from tests.support import ROOT, TAPS, TapCase

README = ROOT / "README.md"
BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[^>]+?) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S
)


def about_settings(case: TapCase) -> dict[str, dict]:
    """The settings ``<tap> --about --format json`` lists, in its order."""
    out = subprocess.run(
        [case.executable, "--about", "--format", "json"], capture_output=True, text=True, check=True
    )
    about = json.loads(out.stdout)
    required = set(about["settings"].get("required", []))
    return {
        name: {**spec, "required": name in required}
        for name, spec in about["settings"]["properties"].items()
    }


def _kind(spec: dict) -> str:
    kinds = spec.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    kind = next((k for k in kinds if k != "null"), "string")
    return "date-time" if spec.get("format") == "date-time" else kind


def _cell(text: t.Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def settings_table(settings: dict[str, dict]) -> str:
    rows = [
        "| setting | kind | required | secret | default | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for name, spec in settings.items():
        default = spec.get("default")
        rows.append(
            f"| `{name}` | {_kind(spec)} | {'yes' if spec['required'] else ''} | "
            f"{'yes' if spec.get('secret') else ''} | "
            f"{'' if default is None else '`' + json.dumps(default) + '`'} | "
            f"{_cell(spec.get('description', ''))} |"
        )
    return "\n".join(rows) + "\n"


def _dummy_config(case: TapCase) -> dict:
    return {name: "x" for name in case.tap_class.config_jsonschema.get("required", [])}


def streams_table(case: TapCase) -> str:
    tap = case.tap_class(config=_dummy_config(case), validate_config=False)
    streams = list(tap.streams.values())
    rows = [
        "| stream | endpoint | key | replication | page size | reads the same endpoint as |",
        "|---|---|---|---|---|---|",
    ]
    for stream in streams:
        method = stream.http_method if hasattr(stream, "http_method") else "GET"
        service = getattr(stream, "service", "")
        endpoint = f"{method} {stream.path}" + (f" `{service}`" if service else "")
        same = [
            s.name
            for s in streams
            if s is not stream
            and s.path == stream.path
            and getattr(s, "service", "") == service
            and s.records_jsonpath == stream.records_jsonpath
        ]
        key = ", ".join(f"`{k}`" for k in stream.primary_keys or ())
        if stream.replication_key:
            replication = f"incremental on `{stream.replication_key}`"
        else:
            replication = "full table"
        page = getattr(stream, "page_size", None)
        rows.append(
            f"| `{stream.name}` | {endpoint} | {key} | {replication} | "
            f"{page if page else 'one reply'} | {', '.join(f'`{n}`' for n in same)} |"
        )
    return "\n".join(rows) + "\n"


def blocks() -> dict[str, str]:
    """Every generated block's name and body."""
    per_tap = {case.name: about_settings(case) for case in TAPS}
    first = per_tap[TAPS[0].name]
    # Common: the same setting, word for word, in every tap (api_key differs per API).
    common = [n for n, spec in first.items() if all(s.get(n) == spec for s in per_tap.values())]
    made = {"settings every tap": settings_table({n: first[n] for n in common})}
    for case in TAPS:
        own = {n: s for n, s in per_tap[case.name].items() if n not in common}
        made[f"settings {case.name}"] = settings_table(own)
        made[f"streams {case.name}"] = streams_table(case)
    return made


def written() -> dict[str, str]:
    """The blocks as README.md has them."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(README.read_text())}


def write() -> None:
    made = blocks()
    text = README.read_text()
    missing = sorted(set(made) - set(written()))
    if missing:
        sys.exit(
            f"README.md has no block for {missing}: "
            "add <!-- generated: NAME --> ... <!-- end: NAME -->"
        )
    README.write_text(
        BLOCK.sub(lambda m: m.group(1) + made.get(m["name"], m["body"]) + m.group(4), text)
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        for name, body in blocks().items():
            print(f"<!-- generated: {name} -->\n{body}<!-- end: {name} -->\n")
