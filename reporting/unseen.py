"""Which categories the model never saw arrived in a report's window, and how often.

Under `MLOPS_UNSEEN_CATEGORY=missing` the API scores such a value as missing and logs it in the
prediction document's `unseen` ({feature: value as sent}). A report counts them on the rows it
read (the sample, when the window was sampled): rows per feature and, per value, the
`TOP_VALUES` most frequent, the rest folded into `other`, so the `reports` document stays small
whatever clients send. Reading the values is what tells a typo ('Prmeium') from a genuinely new
category ('Platinum').
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from lifecycle.stores.documents import UnseenCategories

# The sign between a value and its rows ('Platinum' TIMES 120), by name: ruff's RUF001 flags
# the literal character as a look-alike of "x".
TIMES = "\N{MULTIPLICATION SIGN}"
TOP_VALUES = 10
VALUE_CHARS = 64
# Backslash-escaped in the page's markdown: these would format text (emphasis, links, HTML,
# tables), and escaping "/" and "<" also keeps a value from closing the <script> the page
# embeds its text in (Evidently writes it with json.dumps, which leaves "</script>" as is).
_MARKDOWN = set("\\`*_{}[]()<>#+!|~&/")


def count_unseen(
    unseen: Iterable[Mapping[str, Any] | None] | None,
    sample_fraction: float = 1.0,
    top: int = TOP_VALUES,
) -> dict[str, UnseenCategories]:
    """{feature: rows, its `top` most frequent [value, rows], `other` rows} over the rows'
    `unseen` fields (None: the row had none), features in name order. `sample_fraction` < 1:
    the rows are a uniform sample read at that p, and each feature also gets `estimated_rows`,
    the window's rows estimated as count / p."""
    per_feature: dict[str, Counter[str]] = defaultdict(Counter)
    for row in unseen if unseen is not None else ():
        if not isinstance(row, Mapping):  # the documents written before `unseen` existed
            continue
        for feature, value in row.items():
            per_feature[str(feature)][value_key(value)] += 1
    return {
        feature: _summarise(counts, sample_fraction, top)
        for feature, counts in sorted(per_feature.items())
    }


def value_key(value: Any) -> str:
    """A value as the summary keeps it: str, at most VALUE_CHARS characters (values sharing
    that prefix are counted together), NUL replaced (it ends a C string in the tools that read
    the documents back)."""
    text = value if isinstance(value, str) else str(value)
    return text[:VALUE_CHARS].replace("\x00", "\ufffd")


def estimate_total(count: int, sample_fraction: float) -> int:
    """The window's rows estimated from `count` rows of a uniform sample read at p."""
    return round(count / sample_fraction) if 0 < sample_fraction < 1 else count


def _summarise(counts: Counter[str], sample_fraction: float, top: int) -> UnseenCategories:
    rows = sum(counts.values())
    # Most frequent first; ties by value, so the same window always keeps the same values.
    kept = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
    pairs = [[value, n] for value, n in kept]
    summary = UnseenCategories(rows=rows, values=pairs, other=rows - sum(n for _, n in kept))
    if sample_fraction < 1:
        summary["estimated_rows"] = estimate_total(rows, sample_fraction)
    return summary


def unseen_note(
    unseen: Mapping[str, UnseenCategories], sample_rows: int, total_rows: int, p: float
) -> str | None:
    """The page's "Unseen categories" paragraph (markdown), or None when none arrived."""
    if not unseen:
        return None
    note = (
        "**Unseen categories** scored as missing (`MLOPS_UNSEEN_CATEGORY=missing`): "
        + "; ".join(f"{markdown_text(f)}: {_values_text(c)}" for f, c in unseen.items())
        + "."
    )
    if p < 1:
        note += (
            f" Counted on the sample ({sample_rows:,} of the window's {total_rows:,} rows, "
            f'p = {p:.4f}); "about" is the window\'s estimate, count / p.'
        )
    return note


def unseen_line(unseen: Mapping[str, UnseenCategories] | None, shown: int = 3) -> str | None:
    """One plain line for `mlops status`: each feature's rows and its `shown` top values."""
    if not unseen:
        return None
    parts = []
    for feature, c in unseen.items():
        values = ", ".join(f"{v!r} {TIMES} {n:,}" for v, n in c["values"][:shown])
        more = len(c["values"]) > shown or c["other"] > 0
        rows = f"{c['rows']:,} row{'s' if c['rows'] != 1 else ''}"
        parts.append(f"{feature} {rows} ({values}{', …' if more else ''})")
    return f"{len(unseen)} feature(s) scored as missing: " + "; ".join(parts)


def _values_text(counts: Mapping[str, Any]) -> str:
    """Each kept value and its rows, then the other values' rows and the window's estimate."""
    text = ", ".join(f"'{markdown_text(v)}' {TIMES} {n:,}" for v, n in counts["values"])
    if counts["other"]:
        text += f", other values {TIMES} {counts['other']:,}"
    if "estimated_rows" in counts:
        text += f" (about {counts['estimated_rows']:,} rows of the window)"
    return text


def markdown_text(value: str) -> str:
    """A client's value shown literally in markdown: formatting characters backslash-escaped,
    characters that cannot be seen written as their code (a trailing tab is a typo too)."""
    out = []
    for ch in value:
        if not ch.isprintable():
            ch = f"\\u{ord(ch):04x}"
        out.append("".join(f"\\{c}" if c in _MARKDOWN else c for c in ch))
    return "".join(out)
