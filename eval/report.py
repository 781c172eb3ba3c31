"""Regenerate eval/REPORT.md: ``python -m eval.report [--data-dir DIR] [--out eval]``.

Grades SAF (every split), fits the shipped calibration on SAF training only, grades Mohler and
the ml_interview examples, and writes the tables, plots, commands, model and timings. The
one-data-set variant is ``grader eval DATA --out DIR`` (``eval_dataset``), which applies the
shipped artefacts instead of refitting them.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd

from grader.calibrate import Calibration
from grader.encoder import MemoEncoder, load_encoder
from grader.mapping import SHIPPED_PATH, load_mapping
from grader.grade import Grader
from grader.settings import PROJECT_ROOT, Settings

from . import plots
from .baselines import BASELINES
from .datasets import load_dataset, load_mohler, load_saf
from .evaluate import METHODS, OURS, Evaluation, evaluate, fit_transfer, grade_with_baselines
from .metrics import pearson, spearman

EVAL_DIR = PROJECT_ROOT / "eval"
CALIBRATION_DIR = EVAL_DIR / "calibration"
SHIPPED = "saf-training"  # the shipped mapping's name; ours is CALIBRATION_DIR / "saf-training.json"
EXPERIMENTS = EVAL_DIR / "experiments.md"
REVIEW_CURVE = EVAL_DIR / "REVIEW_CURVE.md"  # written by `python -m eval.review_curve`; its run is separate (minutes)
PUBLISHED = {  # Pearson on Mohler (2011) as reported by the papers
    "Mohler et al. 2011 (unsupervised + SVR ranking)": 0.52,
    "Sultan et al. 2016 (supervised, alignment + embeddings)": 0.59,
    "Kumar et al. 2017 (supervised, Siamese BiLSTM)": 0.65,
    "plain BERT cosine (as reported in the literature)": 0.32,
    "human vs human (two graders)": 0.60,
}
MAPPING_DOC = {
    "default": "the grader's own score with no settings (per-key-point probabilities from accepted evidence, "
    "monotone map fitted on SAF training + our examples + generated attacks; grader/mappings/evidence.json)",
    "linear": "coverage (ours) or similarity (baselines) x max_score, no fitting",
    "transfer": "calibration fitted on SAF training, applied here",
    "cv": "calibration fitted with 5-fold GroupKFold by question on this data set (out-of-fold predictions)",
}


def artefact_path(method: str, directory: Path = CALIBRATION_DIR) -> Path:
    return directory / (f"{SHIPPED}.json" if method == OURS else f"{SHIPPED}-{method.replace('_', '-')}.json")


def save_transfer(transfer: dict[str, Calibration], directory: Path = CALIBRATION_DIR) -> None:
    """Write every method's mapping; ours is the shipped artefact and takes the shipped name.

    A mapping that differs from the one on disk by more than rounding noise (1e-4) gets the next
    version, so fingerprints tell grades made by the two apart; otherwise the file on disk stays.
    """
    transfer[OURS] = transfer[OURS].model_copy(update={"id": SHIPPED})
    for method, cal in transfer.items():
        path = artefact_path(method, directory)
        if path.is_file():
            old = Calibration.model_validate_json(path.read_text(encoding="utf-8"))
            if _same_mapping(old, cal):
                transfer[method] = old  # the report names the file that is shipped
                continue
            cal = cal.model_copy(update={"version": old.version + 1})
        transfer[method] = cal
        cal.save(path)


def _same_mapping(a: Calibration, b: Calibration) -> bool:
    numbers = ("mean", "scale", "coef", "knots_x", "knots_y")
    text = a.model_dump(exclude={"version", "notes", *numbers, "intercept"})
    if text != b.model_dump(exclude={"version", "notes", *numbers, "intercept"}):
        return False
    pairs = [(getattr(a, f), getattr(b, f)) for f in numbers] + [([a.intercept], [b.intercept])]
    return all(len(x) == len(y) and np.allclose(x, y, atol=1e-4) for x, y in pairs)


def load_transfer(directory: Path = CALIBRATION_DIR) -> dict[str, Calibration] | None:
    paths = {m: artefact_path(m, directory) for m in METHODS}
    if not all(p.is_file() for p in paths.values()):
        return None
    return {m: Calibration.model_validate_json(p.read_text(encoding="utf-8")) for m, p in paths.items()}


def _fmt(x) -> str:
    if isinstance(x, (int, np.integer)):
        return str(x)
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.3f}"


def markdown_table(frame: pd.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(_fmt(v) if not isinstance(v, str) else v for v in row) + " |\n"
                          for row in frame.itertuples(index=False))


def metrics_table(ev: Evaluation) -> str:
    cols = ["method", "mapping", "n", "pearson", "pearson 95% interval", "spearman", "rmse", "qwk"] + (
        ["macro_f1"] if "macro_f1" in ev.metrics else []
    )
    order = {m: i for i, m in enumerate(METHODS)}
    table = ev.metrics.sort_values(["mapping", "method"], key=lambda s: s.map(order) if s.name == "method" else s)
    return markdown_table(table[cols])


def per_question_summary(ev: Evaluation) -> str:
    rows = []
    for (method, mapping), t in ev.per_question.groupby(["method", "mapping"], sort=False):
        rows.append({"method": method, "mapping": mapping, "questions": len(t),
                     "median pearson": t["pearson"].median(), "mean pearson": t["pearson"].mean(),
                     "mean qwk": t["qwk"].mean()})
    return markdown_table(pd.DataFrame(rows))


def ml_interview_table(frame: pd.DataFrame) -> str:
    """Spearman between expected and grader scores, overall and by kind of example."""
    rows = []
    for kind, t in [("all", frame), *frame.groupby("kind")]:
        rows.append({"kind": kind, "n": len(t), "spearman (default)": spearman(t["human"], t[f"{OURS}:default"]),
                     "spearman (linear)": spearman(t["human"], t[f"{OURS}:linear"]),
                     "spearman (SAF-train calibration)": spearman(t["human"], t.get(f"{OURS}:transfer", t["score"])),
                     "mean expected": t["human"].mean(), "mean graded (default)": t["score"].mean(),
                     "mean graded (linear)": t[f"{OURS}:linear"].mean()})
    return markdown_table(pd.DataFrame(rows))


LOSS_NOTE = """The default scores 0 an answer that a zero flag decides (off-topic, gibberish, another language, ...) and
an answer in which it finds no key point stated (only its reviewed neighbours can lift that one, issue 20). Where it
loses overall, most of the loss comes from where those groups sit against the rest (the curve's level, and answers
the similarity misses) rather than from how it orders the answers it can read. Measured 2026-12-05 and not shipped: a fixed share for "no key point found" answers (0.1 to 0.5 of full
marks) raised SAF unseen answers to at most 0.648 but lowered SAF unseen questions, our examples (0.885 to 0.792
at 0.5) and the generated attacks, and moved Mohler by at most +0.003: it pays vague text, and Mohler's 548 such
answers (human mean 0.67 of full marks) are not separable from its wrong answers by any accepted evidence.
Curves fitted on SAF alone trade Mohler for SAF (Mohler 0.522, SAF unseen questions 0.879)."""


def loss_table(evaluations: list[Evaluation]) -> str:
    """Where the default score loses: the answers it scores 0, and Pearson among the answers it finds a key point in."""
    rows = []
    for ev in evaluations:
        f = ev.frame
        share = (f["human"] / f["max_score"]).to_numpy(float)
        zeroed = f["zeroed"].to_numpy(bool)
        found = f["points"].map(lambda pts: any(p[2] in ("covered", "partial") for p in pts)).to_numpy(bool) & ~zeroed
        row = {"data set": ev.name}
        for label, rows_of in (("zero flag", zeroed), ("no key point found", ~zeroed & ~found), ("a key point found", found)):
            row[f"{label}: answers (human share)"] = f"{rows_of.sum()} ({share[rows_of].mean():.2f})" if rows_of.any() else "0"
        for label, col in (("ours default", f"{OURS}:default"), *((f"{b} linear", f"{b}:linear") for b in BASELINES)):
            row[f"pearson where a key point is found: {label}"] = pearson(f["human"][found], f[col][found])
        rows.append(row)
    table = pd.DataFrame(rows)
    scores = table.filter(like="pearson where")
    ahead = table["data set"][scores.iloc[:, 0] >= scores.max(axis=1)].tolist()
    behind = [n for n in table["data set"] if n not in ahead]
    summary = (f"Among the answers in which it finds a key point, the default's Pearson is the highest of the table on "
               f"{', '.join(ahead) or 'no data set'}" + (f" and not on {', '.join(behind)}." if behind else "."))
    return markdown_table(table) + "\n" + summary + "\n\n" + LOSS_NOTE + "\n"


def dataset_section(ev: Evaluation, out: Path) -> str:
    slug = ev.name
    best = f"{OURS}:default"
    cols = {"ours default": best, "ours linear": f"{OURS}:linear", "embedding cosine linear": "embedding_cosine:linear"}
    scatter = plots.scatter(ev.frame, cols, out / f"{slug}-scatter.png", f"{slug}: human vs predicted")
    bars = plots.per_question_bars(
        ev.per_question, {"ours (" + best.split(":")[1] + ")": (OURS, best.split(":")[1]),
                          "embedding cosine (linear)": ("embedding_cosine", "linear")},
        out / f"{slug}-per-question.png", f"{slug}: agreement per question",
    )
    text = [f"### {slug} ({len(ev.frame)} answers, {ev.frame['group'].nunique()} questions)\n",
            f"Graded in {ev.grade_seconds:.0f} s (drafting rubrics, segmenting, encoding, judging).\n",
            metrics_table(ev), "\nPer question (Pearson and kappa within each question, then averaged):\n",
            per_question_summary(ev), f"\n![scatter]({scatter.name})\n", f"![per question]({bars.name})\n"]
    text += [f"_{n}_\n" for n in ev.notes]
    return "\n".join(text)


def run(data_dir: Path, out: Path, cache: Path | None = None) -> Path:
    started = time.perf_counter()
    settings = Settings(calibration_path=None)
    encoder = MemoEncoder(load_encoder(settings.model_path, settings.encode_batch_size))
    if cache:
        encoder.load(cache)
    grader = Grader(settings, encoder=encoder)

    saf, saf_seconds = grade_with_baselines(load_saf(data_dir / "saf"), grader)
    training = saf[saf["dataset"] == "saf-training"]
    transfer = fit_transfer(training, SHIPPED)
    save_transfer(transfer, out / "calibration")
    evaluations = [evaluate("saf-training", training, None, saf_seconds * len(training) / len(saf))]
    for split in ("saf-unseen_answers", "saf-unseen_questions"):
        rows = saf[saf["dataset"] == split]
        evaluations.append(evaluate(split, rows, transfer, saf_seconds * len(rows) / len(saf)))
    mohler, mohler_seconds = grade_with_baselines(load_mohler(data_dir / "mohler" / "mohler.csv"), grader)
    evaluations.insert(0, evaluate("mohler", mohler, transfer, mohler_seconds))
    interview, _ = grade_with_baselines(load_dataset(EVAL_DIR / "data" / "ml_interview"), grader)
    interview = evaluate("ml_interview", interview, transfer).frame
    if cache:
        encoder.save(cache, with_tokens=True)

    curve = plots.calibration_curve(training, transfer[OURS], out / "calibration-curve.png",
                                    "shipped mapping, fitted on SAF training")
    curve_m = plots.calibration_curve(mohler, transfer[OURS], out / "calibration-curve-mohler.png",
                                      "shipped mapping applied to Mohler")
    report = render(evaluations, interview, transfer[OURS], [curve, curve_m], time.perf_counter() - started, settings)
    if cache:
        report = report.replace("do not edit by hand.", f"do not edit by hand. Embeddings were reused from {cache.name}, "
                                "so the per-data-set grading times below exclude most encoding.", 1)
    path = out / "REPORT.md"
    path.write_text(report, encoding="utf-8")
    return path


def _pearson_of(metrics: pd.DataFrame, method: str, mapping: str) -> dict[str, object]:
    row = metrics.loc[(method, mapping)]
    return {"pearson": row["pearson"], "95% interval": row["pearson 95% interval"]}


def render(evaluations, interview, shipped: Calibration, curves, seconds: float, settings: Settings) -> str:
    mohler = next(e for e in evaluations if e.name == "mohler")
    m = mohler.metrics.set_index(["method", "mapping"])
    published = pd.DataFrame(
        [{"system": k, "pearson": v, "95% interval": "(published)"} for k, v in PUBLISHED.items()]
        + [{"system": f"this grader, {mp} ({MAPPING_DOC[mp].split(',')[0]})", **_pearson_of(m, OURS, mp)}
           for mp in ("default", "linear", "transfer", "cv")]
        + [{"system": f"baseline {b}, cv", **_pearson_of(m, b, "cv")} for b in BASELINES]
    )
    t = settings.thresholds
    parts = [
        "# Accuracy against human graders\n",
        "Generated by `python -m eval.report` (about "
        f"{seconds / 60:.0f} minutes on 2 CPU cores); do not edit by hand. Model: all-MiniLM-L6-v2 "
        f"(packaged, CPU). Python {platform.python_version()}.\n",
        "## Summary: Mohler (2011) data-structures answers, Pearson with the mean human grade\n",
        markdown_table(published),
        "\nMappings: " + "; ".join(f"**{k}**: {v}" for k, v in MAPPING_DOC.items()) + ".\n",
        "Methods: **ours** is the grader's own path (references drafted into rubrics with "
        "`grader.draft.draft_rubric`, answers graded with `Grader.grade_many`), calibrated on the features "
        f"`{', '.join(METHODS[OURS])}`. Baselines: "
        + "; ".join(f"**{k}**: {v}" for k, v in BASELINES.items())
        + ". Each baseline is mapped to the score scale exactly as ours is (same ridge+isotonic fit, same folds).\n",
        "Metrics: Pearson and Spearman on the raw scale, Pearson with a 95% interval from resampling whole "
        "questions (1000 rounds; differences inside it are within noise); RMSE in points; quadratic weighted kappa after "
        "rounding human and predicted scores to whole points (Mohler, 0-5) or quarter points (SAF, 0-1); "
        "macro-F1 (SAF) over Correct / Partially correct / Incorrect, predicted from the score share with cuts "
        "0.32 and 0.82 (halfway between the classes' mean human share in SAF training). SAF has no stated "
        "maximum per question: the maximum is the highest score any answer to the question received "
        "(1.0 for every question in this release).\n",
        "## Data sets\n",
    ]
    parts += [dataset_section(ev, Path(curves[0]).parent) for ev in evaluations]
    parts += ["## Where the default score loses\n", loss_table(evaluations)]
    parts += [
        "## The default score mapping\n",
        _mapping_section(),
        "## The answer-level calibration (optional, `GRADER_CALIBRATION_PATH`)\n",
        f"`eval/calibration/{SHIPPED}.json` (`{shipped.name}`, {shipped.method}), fitted on SAF training "
        f"only ({shipped.notes.get('rows')} answers); features {', '.join(shipped.features)}; ridge coefficients "
        f"{', '.join(f'{c:+.3f}' for c in shipped.coef)}. Use it with "
        f"`GRADER_CALIBRATION_PATH=eval/calibration/{SHIPPED}.json`; fingerprints then say "
        f"`calibration: {shipped.name}` instead of `linear`.\n",
        *[f"![calibration curve]({Path(c).name})\n" for c in curves],
        "## ML interview examples (shipped rubrics)\n",
        "Spearman between each example's expected score and the grader's score, against `rubrics/<id>.yaml`.\n",
        ml_interview_table(interview),
        "\n## Settings\n",
        f"Thresholds: covered {t.covered_threshold}, partial {t.partial_threshold}, question restated "
        f"{t.question_restated_threshold}, off-topic {t.off_topic_threshold}.\n",
        "## How to reproduce\n",
        "```\n. .venv/bin/activate\npython -m eval.report --data-dir ../shared/data --out eval   # this file\n"
        "grader eval ../shared/data/mohler/mohler.csv --out /tmp/mohler   # one data set, shipped artefacts\n```\n",
    ]
    if REVIEW_CURVE.is_file():
        parts += [REVIEW_CURVE.read_text(encoding="utf-8").replace("# ", "## ", 1)]
    if EXPERIMENTS.is_file():
        parts += ["## What we tried\n", EXPERIMENTS.read_text(encoding="utf-8")]
    return "\n".join(parts)


def _mapping_section() -> str:
    """What the shipped per-key-point mapping is and what it was fitted on."""
    m = load_mapping(SHIPPED_PATH)
    weights = ", ".join(f"{f} {c:+.2f}" for f, c in zip(m.features, m.coef))
    return (
        f"`grader/mappings/evidence.json` (`{m.name}`): {m.method}. Fitted on {m.fitted_on}; "
        f"{m.notes.get('labelled_points')} labelled key points. Per key point "
        f"p = sigmoid({m.intercept:+.2f} + {weights}); the expected coverage maps to the share of max_score "
        f"through {len(m.knots_x)} isotonic knots (0 -> {m.share(0.0):.2f}, 0.25 -> {m.share(0.25):.2f}, "
        f"0.5 -> {m.share(0.5):.2f}, 0.75 -> {m.share(0.75):.2f}, 1 -> {m.share(1.0):.2f}), then the guards' hard "
        "effects (README, How a grade is made). Refit with `python -m eval.fit_mapping`. It is the column "
        "**default** above; no row of Mohler or SAF unseen is in its fit.\n"
    )


def eval_dataset(data: Path, out: Path, settings: Settings) -> Path:
    """``grader eval DATA --out DIR``: one data set, shipped artefacts for the transfer column."""
    out.mkdir(parents=True, exist_ok=True)
    grader = Grader(settings.model_copy(update={"calibration_path": None}),
                    encoder=MemoEncoder(load_encoder(settings.model_path, settings.encode_batch_size)))
    frame, seconds = grade_with_baselines(load_dataset(data), grader)
    ev = evaluate(frame["dataset"].iloc[0] if frame["dataset"].nunique() == 1 else "data", frame, load_transfer(),
                  seconds)
    section = dataset_section(ev, out)
    path = out / f"{ev.name}-report.md"
    path.write_text(f"# Agreement with human scores: {data}\n\n{section}\n", encoding="utf-8")
    ev.frame.drop(columns=["flags"]).to_csv(out / f"{ev.name}-scores.csv", index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=EVAL_DIR)
    parser.add_argument("--cache", type=Path, default=None, help="an .npz of embeddings to reuse across runs")
    args = parser.parse_args()
    print(run(args.data_dir, args.out, args.cache))


if __name__ == "__main__":
    main()
