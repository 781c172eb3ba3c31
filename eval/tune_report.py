"""Render a ``grader.tune`` report: Markdown and HTML with matplotlib PNGs, written to one folder."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from grader.tune import MIN_PEARSON_GAIN, RubricComparison, TuneReport  # noqa: E402


def _similarity_histogram(report: TuneReport, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(report.similarities, bins=30, range=(-0.1, 1.0), color="#4c72b0")
    for name, value in report.thresholds.items():
        ax.axvline(value, color="#c44e52" if name.startswith("covered") else "#dd8452", linestyle="--", label=name)
    ax.set_xlabel("best similarity of an answer span to a key point")
    ax.set_ylabel("(answer, key point) pairs")
    ax.set_title(f"{report.rubric_id}: similarity distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _score_scatter(report: TuneReport, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    pairs = [(h, s) for h, s in zip(report.human or [], report.scores) if s is not None]
    ax.scatter([h for h, _ in pairs], [s for _, s in pairs], alpha=0.6)
    ax.set_xlabel("human score")
    ax.set_ylabel("grader score")
    ax.set_title(f"Pearson r = {report.pearson}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _pair(thresholds: dict[str, float]) -> str:
    return f"covered {thresholds['covered_threshold']:.2f} / partial {thresholds['partial_threshold']:.2f}"


def _table(header: list[str], rows: list[list[object]]) -> str:
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def tune_markdown(report: TuneReport, images: dict[str, str]) -> str:
    out = [f"# Tuning report: `{report.rubric_id}`", ""]
    out.append(f"{report.answers} answers, {report.graded} graded; thresholds in force: {_pair(report.thresholds)}.")
    if report.errors:
        out += ["", "Answers that could not be graded: " + "; ".join(report.errors[:10])]
    out += ["", "## Key points", ""]
    out.append(
        _table(
            ["key point", "hit rate", *report.key_points[0].counts.keys()] if report.key_points else ["key point"],
            [[kp.id, f"{kp.hit_rate:.0%}", *kp.counts.values()] for kp in report.key_points],
        )
    )
    out += ["", f"![similarity histogram]({images['histogram']})", ""]
    if report.warnings:
        out += ["## Rubric warnings", "", *[f"- {w}" for w in report.warnings], ""]
    if report.separation is not None:
        out += ["## Agreement with human scores", ""]
        separation = ", ".join(f"{k} = {v}" for k, v in report.separation.items())
        out.append(f"Pearson r = {report.pearson}; {separation}.")
        out += ["", f"![grader vs human]({images['scatter']})", ""]
    fit = report.threshold_fit
    if fit is not None:
        out += ["## Suggested thresholds (cross-validated)", ""]
        out.append(
            f"Grid search over covered/partial pairs maximising Pearson on the train folds of a {fit.folds}-fold "
            f"KFold (a pair replaces the thresholds in force only if it wins by {MIN_PEARSON_GAIN} Pearson on the "
            "train folds); "
            "each answer is scored with the pair chosen without it. Pearson ignores scale: check MAE too."
        )
        out += [
            "",
            _table(
                ["", "thresholds", "held-out Pearson", "held-out MAE"],
                [
                    ["before", _pair(fit.before), fit.heldout_pearson_before, fit.heldout_mae_before],
                    ["after (CV)", "chosen per fold", fit.heldout_pearson_after, fit.heldout_mae_after],
                ],
            ),
            "",
            f"Suggested for the rubric (fitted on all answers): `thresholds: {json.dumps(fit.suggested)}`",
            "",
            "Per-fold choices: " + "; ".join(_pair(c) for c in fit.fold_choices),
            "",
        ]
    if report.disagreements:
        out += ["## Largest disagreements", ""]
        for d in report.disagreements:
            flags = f" (flags: {', '.join(d.flags)})" if d.flags else ""
            out.append(f"- **answer {d.index + 1}** human {d.human}, grader {d.grader}{flags}: {d.answer[:300]!r}")
            out += [f"  - `{kp}`: {ev}" for kp, ev in d.evidence.items()]
        out.append("")
    out += ["## Suggested key points", ""]
    if report.suggested_key_points:
        out.append("Statements of well-scored answers that match no key point, clustered by meaning:")
        out += ["", _table(["representative", "answers", "also said as"], [
            [s.text, s.answers, " / ".join(s.examples)] for s in report.suggested_key_points
        ])]
    else:
        out.append("None: well-scored answers make no common point the rubric lacks.")
    return "\n".join(out) + "\n"


def write_tune_report(report: TuneReport, out: Path) -> Path:
    """Write report.md, report.html, report.json and the PNGs into ``out``; returns the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    images = {"histogram": _similarity_histogram(report, out / "similarity.png").name}
    if report.human is not None:
        images["scatter"] = _score_scatter(report, out / "scores.png").name
    markdown = tune_markdown(report, images)
    (out / "report.md").write_text(markdown)
    (out / "report.json").write_text(report.model_dump_json(indent=2))
    (out / "report.html").write_text(_html(markdown, report.rubric_id))
    return out / "report.md"


def comparison_markdown(comparison: RubricComparison, limit: int = 20) -> str:
    out = [
        "# Impact of a rubric change",
        "",
        f"{comparison.old_rubric} -> {comparison.new_rubric}: {comparison.changed} of {comparison.answers} answers "
        f"change score (mean |change| {comparison.mean_abs_delta}, largest {comparison.max_abs_delta}; "
        f"mean score {comparison.mean_old} -> {comparison.mean_new}).",
        "",
    ]
    if comparison.changes:
        out.append(
            _table(
                ["answer", "old", "new", "change", "text"],
                [[c.index + 1, c.old, c.new, f"{c.delta:+}", c.answer[:120]] for c in comparison.changes[:limit]],
            )
        )
    return "\n".join(out) + "\n"


def _html(markdown: str, title: str) -> str:
    """A self-contained page: Markdown tables and images become HTML, the rest stays readable text."""
    body = []
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            head, *rest = rows
            body.append(
                "<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rest) + "</table>"
            )
            rows.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if not line.startswith("|---"):
                rows.append([html.escape(c.strip()) for c in line.strip("|").split(" | ")])
            continue
        flush()
        if line.startswith("!["):
            src = line[line.index("(") + 1 : line.rindex(")")]
            body.append(f'<img src="{html.escape(src)}" alt="">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px}"
    )
    head = f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title><style>{style}</style>\n"
    return head + "\n".join(body)
