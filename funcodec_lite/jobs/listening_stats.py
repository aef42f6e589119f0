"""Aggregating MUSHRA results: reading exported files, post-screening listeners, means with 95 % intervals.

Post-screening follows ITU-R BS.1534-3 (section 4.1.2): a listener who rates the hidden reference below 90
in more than 15 % of the trials is excluded. Each condition's score is the mean over the remaining
listeners' ratings (one per listener and trial) with a two-sided 95 % confidence interval from Student's t
distribution: ``mean ± t(0.975, n - 1) · s / √n``, ``s`` the sample standard deviation.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from funcodec_lite.jobs.listening import ANCHOR, HIDDEN_REFERENCE, RESULTS_FORMAT
from funcodec_lite.utils.atomic import atomic_path, write_json

SCREEN_BELOW = 90.0
SCREEN_MAX_FRACTION = 0.15
_CSV_COLUMNS = ("test", "listener", "trial", "condition", "rating")


@dataclass(frozen=True)
class Rating:
    """One listener's rating of one condition in one trial."""

    test: str
    listener: str
    trial: str
    condition: str
    rating: float


@dataclass(frozen=True)
class ConditionScore:
    """A condition's ratings summarised: count, mean, sample std and the 95 % interval [low, high]."""

    condition: str
    n: int
    mean: float
    std: float
    ci95: float
    low: float
    high: float


def _rating(path: Path, test: str, listener: str, trial: object, condition: object, value: object) -> Rating:
    try:
        rating = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: rating {value!r} is not a number") from None
    if not 0 <= rating <= 100 or not trial or not condition:
        raise ValueError(f"{path}: a rating needs a trial, a condition and a value in 0..100, got "
                         f"{trial!r} {condition!r} {value!r}")
    return Rating(test, listener, str(trial), str(condition), rating)


def read_results(path: str | os.PathLike) -> list[Rating]:
    """The ratings of one exported file (the page's JSON, or its CSV), all of one listener and test.

    Raises:
        ValueError: a file that cannot be read or is not a results file of the page (one line naming it).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read ({getattr(err, 'strerror', None) or err})") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        if not rows or any(c not in rows[0] for c in _CSV_COLUMNS):
            raise ValueError(f"{path}: not a results CSV (columns {', '.join(_CSV_COLUMNS)})")
        ratings = [_rating(path, r["test"], r["listener"], r["trial"], r["condition"], r["rating"])
                   for r in rows]
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
        if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT \
                or not isinstance(data.get("ratings"), list) or not data.get("listener"):
            raise ValueError(f"{path}: not a listening-test results file (format {RESULTS_FORMAT})")
        ratings = []
        for row in data["ratings"]:
            if not isinstance(row, dict):
                raise ValueError(f"{path}: a rating is not an object")
            ratings.append(_rating(path, str(data.get("test", "")), str(data["listener"]), row.get("trial"),
                                   row.get("condition"), row.get("rating")))
    if not ratings:
        raise ValueError(f"{path}: no ratings")
    if len({(r.test, r.listener) for r in ratings}) != 1:
        raise ValueError(f"{path}: ratings of several listeners or tests in one file")
    if len({(r.trial, r.condition) for r in ratings}) != len(ratings):
        raise ValueError(f"{path}: a condition rated twice in one trial")
    return ratings


def read_all(paths: list[str | os.PathLike]) -> list[Rating]:
    """The ratings of several files, one listener each (a name seen twice becomes ``name#2``).

    Raises:
        ValueError: a bad file (see `read_results`) or files of different tests.
    """
    ratings: list[Rating] = []
    seen: dict[str, int] = {}
    for path in paths:
        rows = read_results(path)
        name = rows[0].listener
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            rows = [Rating(r.test, f"{name}#{seen[name]}", r.trial, r.condition, r.rating) for r in rows]
        ratings += rows
    tests = sorted({r.test for r in ratings})
    if len(tests) > 1:
        raise ValueError(f"results of {len(tests)} different tests ({', '.join(tests)}); aggregate one test "
                         "at a time")
    return ratings


def screen(ratings: list[Rating], below: float = SCREEN_BELOW,
           max_fraction: float = SCREEN_MAX_FRACTION) -> dict[str, float]:
    """Listeners to exclude: ``{listener: fraction of their trials with the hidden reference < below}`` for
    those whose fraction exceeds ``max_fraction``. A listener without hidden-reference ratings is kept."""
    low: dict[str, list[bool]] = defaultdict(list)
    for r in ratings:
        if r.condition == HIDDEN_REFERENCE:
            low[r.listener].append(r.rating < below)
    fractions = {name: sum(flags) / len(flags) for name, flags in low.items()}
    return {name: f for name, f in fractions.items() if f > max_fraction}


def condition_scores(ratings: list[Rating]) -> list[ConditionScore]:
    """Mean and 95 % t-interval of each condition: the hidden reference first, the anchor second, then the
    conditions by name."""
    from scipy.stats import t as student_t

    values: dict[str, list[float]] = defaultdict(list)
    for r in ratings:
        values[r.condition].append(r.rating)
    order = sorted(values, key=lambda c: (c != HIDDEN_REFERENCE, c != ANCHOR, c))
    scores = []
    for condition in order:
        x = np.asarray(values[condition], dtype=np.float64)
        n, mean = len(x), float(x.mean())
        std = float(x.std(ddof=1)) if n > 1 else math.nan
        ci = float(student_t.ppf(0.975, n - 1) * std / math.sqrt(n)) if n > 1 else math.nan
        scores.append(ConditionScore(condition, n, mean, std, ci, mean - ci, mean + ci))
    return scores


@dataclass
class Summary:
    """A test's aggregate: listeners kept and excluded (with their low-reference fraction), scores."""

    test: str
    listeners: list[str]
    excluded: dict[str, float]
    trials: int
    scores: list[ConditionScore]

    def to_dict(self) -> dict:
        def clean(value: float) -> float | None:
            return None if isinstance(value, float) and math.isnan(value) else value

        return {"test": self.test, "listeners": self.listeners, "excluded": self.excluded,
                "trials": self.trials, "screening": {"hidden_reference_below": SCREEN_BELOW,
                                                     "max_fraction": SCREEN_MAX_FRACTION},
                "scores": [{k: clean(v) for k, v in asdict(s).items()} for s in self.scores]}


def summarise(ratings: list[Rating], screening: bool = True) -> Summary:
    """Post-screens (unless ``screening`` is False) and scores the ratings of one test.

    Raises:
        ValueError: every listener excluded by the post-screening.
    """
    listeners = sorted({r.listener for r in ratings})
    excluded = screen(ratings) if screening else {}
    kept = [r for r in ratings if r.listener not in excluded]
    if not kept:
        raise ValueError(f"all {len(listeners)} listener(s) rated the hidden reference below "
                         f"{SCREEN_BELOW:.0f} in more than {SCREEN_MAX_FRACTION:.0%} of the trials "
                         "(post-screening); --keep-all aggregates them anyway")
    return Summary(ratings[0].test, [name for name in listeners if name not in excluded], excluded,
                   len({r.trial for r in kept}), condition_scores(kept))


def summary_table(summary: Summary) -> str:
    """A fixed-width table: condition, n, mean, ±95 % interval, [low, high]."""
    lines = [f"{'condition':24s} {'n':>4s} {'mean':>6s} {'±95%':>6s}  interval",
             "-" * 58]
    for s in summary.scores:
        lines.append(f"{s.condition[:24]:24s} {s.n:4d} {s.mean:6.1f} {s.ci95:6.1f}  "
                     f"[{s.low:5.1f}, {s.high:5.1f}]")
    return "\n".join(lines)


def summary_markdown(summary: Summary) -> str:
    """The summary as markdown: who was kept and excluded, and the score table."""
    lines = [f"# Listening test {summary.test}", "",
             f"{len(summary.listeners)} listener(s) kept ({', '.join(summary.listeners)}), "
             f"{len(summary.excluded)} excluded by post-screening (hidden reference below {SCREEN_BELOW:.0f} "
             f"in more than {SCREEN_MAX_FRACTION:.0%} of the trials)"
             + (": " + ", ".join(f"{k} ({v:.0%})" for k, v in summary.excluded.items()) if summary.excluded
                else "") + f"; {summary.trials} trial(s).", "",
             "| condition | n | mean | ±95 % CI | interval |", "|---|---|---|---|---|"]
    for s in summary.scores:
        lines.append(f"| {s.condition} | {s.n} | {s.mean:.1f} | {s.ci95:.1f} | [{s.low:.1f}, {s.high:.1f}] |")
    return "\n".join(lines) + "\n"


def plot_summary(summary: Summary, path: Path) -> None:
    """Bar chart of the means with their 95 % intervals (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(4.0, 1.1 * len(summary.scores) + 1.5), 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    x = np.arange(len(summary.scores))
    errors = [0.0 if math.isnan(s.ci95) else s.ci95 for s in summary.scores]
    colours = ["tab:gray" if s.condition in (HIDDEN_REFERENCE, ANCHOR) else "tab:blue"
               for s in summary.scores]
    ax.bar(x, [s.mean for s in summary.scores], yerr=errors, capsize=4, color=colours)
    ax.set_xticks(x, [s.condition for s in summary.scores], rotation=20, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("MUSHRA score (mean, 95 % CI)")
    ax.set_title(f"{len(summary.listeners)} listener(s), {summary.trials} trial(s)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)


def write_summary(summary: Summary, out_dir: Path) -> list[Path]:
    """``summary.json``, ``summary.md`` and ``scores.png`` in ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "summary.json", out_dir / "summary.md", out_dir / "scores.png"]
    write_json(paths[0], summary.to_dict())
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(summary_markdown(summary), encoding="utf-8")
    plot_summary(summary, paths[2])
    return paths
