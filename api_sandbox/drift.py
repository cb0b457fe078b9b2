"""Schema drift: new fields an API starts sending, from a chosen record on.

Real APIs add fields without notice. ``Drift`` adds four to one stream's records, from
the record at ``start`` (its index in API order, as ground truth lists them) on:

- ``drift_note``: a string;
- ``drift_score``: a number with a fraction;
- ``drift_detail``: a nested object (``level``, an integer, and ``label``, a string);
- ``drift_code``: an integer up to the record before ``string_from``, a string from it on
  (a type that changes under a sync).

The values follow from the record's index, so every run serves the same ones, and they
are part of the stored records: ground truth (``records()``, ``/_sandbox/records``)
includes them. A byte-identical copy of a record (``duplicate_every``) stays one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from api_sandbox.faults import check_fields, key_values

#: The fields a drift adds, for tests to name them.
FIELDS = ("drift_note", "drift_score", "drift_detail", "drift_code")


@dataclass(frozen=True)
class Drift:
    """New fields on ``stream`` of ``api`` from the record at ``start`` on (see module).

    ``string_from`` is the index from which ``drift_code`` is a string (None: five
    records after ``start``).
    """

    api: str
    stream: str
    start: int = 0
    string_from: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.string_from is not None and self.string_from < 0):
            raise ValueError("drift start and string_from must be 0 or more")

    @property
    def switch_at(self) -> int:
        """The first index whose ``drift_code`` is a string."""
        return self.start + 5 if self.string_from is None else self.string_from

    def values(self, index: int) -> dict[str, Any]:
        """The fields the record at ``index`` gains (none before ``start``)."""
        if index < self.start:
            return {}
        code: int | str = index if index < self.switch_at else f"C-{index}"
        return {
            "drift_note": f"note {index}",
            "drift_score": index + 0.25,
            "drift_detail": {"level": index % 5, "label": f"level {index % 5}"},
            "drift_code": code,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> Drift:
        """A drift from a JSON object of its fields; unknown keys are an error."""
        check_fields(cls, data, "drift")
        if "api" not in data or "stream" not in data:
            raise ValueError("a drift needs api= and stream=")
        values = dict(data)
        for key in ("start", "string_from"):
            if values.get(key) is not None:
                values[key] = int(values[key])
        return cls(**values)

    @classmethod
    def parse(cls, spec: str) -> Drift:
        """The CLI form ``api=rewards,stream=orders,start=10,string_from=20``."""
        return cls.from_mapping(dict(key_values(spec, "drift")))
