"""ITIL priority derived from impact × urgency.

ITIL does not predict priority directly: it is a lookup in a table whose rows
are impact levels and whose columns are urgency levels. Help desks tune that
table, so it is data (a default here, or an inline matrix in the mapping YAML)
and a bundle stores the one it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError

LEVELS = ("high", "medium", "low")

# The standard ITIL 3×3 table: P1 = most urgent (as triage.ticket.Priority).
DEFAULT_TABLE: dict[str, dict[str, int]] = {
    "high": {"high": 1, "medium": 2, "low": 3},
    "medium": {"high": 2, "medium": 3, "low": 4},
    "low": {"high": 3, "medium": 4, "low": 5},
}


def priority_label(value: int) -> str:
    """The label a priority number is shown and predicted as (``1`` → ``"P1"``)."""
    return f"P{int(value)}"


@dataclass(frozen=True)
class PriorityMatrix:
    """A validated impact → urgency → priority table (priority 1..5, 1 most urgent)."""

    table: dict[str, dict[str, int]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_TABLE.items()}
    )

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, *, source: str | None = None) -> "PriorityMatrix":
        """Build from ``{impact: {urgency: priority}}`` (keys as the renamed labels), or the default.

        Priorities may be written ``1`` or ``"P1"``. Every impact row must name the same
        urgency columns, so no combination the heads can predict is left without a priority.
        """
        if config is None:
            return cls()
        if not isinstance(config, Mapping) or not config:
            raise ConfigError(
                f"priority matrix: expected a mapping impact -> {{urgency: priority}}, got {config!r}",
                file=source,
            )
        table: dict[str, dict[str, int]] = {}
        columns: set[str] | None = None
        for impact, row in config.items():
            if not isinstance(row, Mapping) or not row:
                raise ConfigError(
                    f"priority matrix row {impact!r}: expected a mapping urgency -> priority, got {row!r}",
                    file=source,
                )
            parsed = {str(u): _parse_priority(p, impact, u, source) for u, p in row.items()}
            if columns is not None and set(parsed) != columns:
                raise ConfigError(
                    f"priority matrix row {impact!r}: expected urgency columns "
                    f"{sorted(columns)}, got {sorted(parsed)}",
                    file=source,
                )
            columns = set(parsed)
            table[str(impact)] = parsed
        return cls(table)

    @property
    def impacts(self) -> list[str]:
        return list(self.table)

    @property
    def urgencies(self) -> list[str]:
        return list(next(iter(self.table.values())))

    def priority(self, impact: str, urgency: str) -> int:
        """The priority number for one combination; a clear error for unknown levels."""
        row = self.table.get(str(impact))
        if row is None:
            raise ConfigError(
                f"priority matrix: unknown impact: expected one of {self.impacts}, got {impact!r}"
            )
        if str(urgency) not in row:
            raise ConfigError(
                f"priority matrix: unknown urgency: expected one of {self.urgencies}, got {urgency!r}"
            )
        return row[str(urgency)]

    def label(self, impact: str, urgency: str) -> str:
        return priority_label(self.priority(impact, urgency))

    def joint(
        self, impact_proba: Mapping[str, float], urgency_proba: Mapping[str, float]
    ) -> dict[str, float]:
        """P(priority) under independence of the two heads: the sum of products per cell.

        Combinations the matrix does not know (a head trained on other labels) are skipped,
        so the result may sum to less than one; it is never renormalised upwards.
        """
        out: dict[str, float] = {}
        for imp, p_i in impact_proba.items():
            row = self.table.get(str(imp))
            if row is None:
                continue
            for urg, p_u in urgency_proba.items():
                if str(urg) in row:
                    key = priority_label(row[str(urg)])
                    out[key] = out.get(key, 0.0) + float(p_i) * float(p_u)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {k: dict(v) for k, v in self.table.items()}


def _parse_priority(value: Any, impact: Any, urgency: Any, source: str | None) -> int:
    text = str(value).strip().upper().removeprefix("P")
    if not text.isdigit() or not 1 <= int(text) <= 5:
        raise ConfigError(
            f"priority matrix cell [{impact!r}][{urgency!r}]: expected a priority "
            f"1..5 or P1..P5, got {value!r}",
            file=source,
        )
    return int(text)
