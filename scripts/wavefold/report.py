"""Figures and tables of the report: confusion, per-class accuracy, confidently wrong clips, label mix,
submission history. ``snakemake --report`` collects them with the CV and blend tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on a cluster node
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .competitions import explode_label_sets
from .submission import label_shares


def _top_label(table: pd.DataFrame, labels) -> np.ndarray:
    return np.array(labels)[table[list(labels)].to_numpy().argmax(1)]


def one_row_per_true_label(truth: pd.Series, oof: pd.DataFrame) -> tuple[pd.Series, pd.DataFrame]:
    """A multi-label competition's truth (id -> labels joined by commas) and OOF table with a row per
    (clip, true label), named ``<id>#<label>``: what the confusion matrix and the tables take."""
    exploded = explode_label_sets(truth)
    names = exploded.index.astype(str) + "#" + exploded.to_numpy()
    kept = exploded[exploded.index.isin(oof["id"])]
    rows = oof.set_index("id").loc[kept.index]
    rows.index = kept.index.astype(str) + "#" + kept.to_numpy()
    return pd.Series(exploded.to_numpy(), index=names), rows.rename_axis("id").reset_index()


def confusion(oof: pd.DataFrame, truth: pd.Series, labels) -> pd.DataFrame:
    """Rows: true label; columns: predicted (top) label; counts. ``labels``: the competition's."""
    labels = list(labels)
    predicted = pd.Categorical(_top_label(oof, labels), categories=labels)
    actual = pd.Categorical(truth.loc[oof["id"]].to_numpy(), categories=labels)
    return pd.crosstab(actual, predicted, dropna=False).reindex(index=labels, columns=labels, fill_value=0)


def plot_confusion(matrix: pd.DataFrame, title: str, path) -> None:
    shares = matrix.div(matrix.sum(1).clip(lower=1), axis=0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(shares.to_numpy(), cmap="Blues", vmin=0, vmax=1)
    labels = list(matrix.index)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix.to_numpy()):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if shares.iat[i, j] > 0.5 else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label="share of the true label's clips")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def per_class_accuracy(matrix: pd.DataFrame) -> pd.Series:
    return pd.Series(np.diag(matrix.to_numpy()) / matrix.sum(1).clip(lower=1).to_numpy(), index=matrix.index)


def confidently_wrong(oof: pd.DataFrame, truth: pd.Series, labels, count: int = 50) -> pd.DataFrame:
    """The OOF clips the blend got wrong with the highest confidence: label errors and hard cases to listen to."""
    labels = list(labels)
    probabilities = oof[labels].to_numpy()
    table = pd.DataFrame({"id": oof["id"], "fold": oof["fold"], "label": truth.loc[oof["id"]].to_numpy(),
                          "predicted": np.array(labels)[probabilities.argmax(1)],
                          "confidence": probabilities.max(1)})  # fmt: skip
    table["p_label"] = probabilities[np.arange(len(table)), table["label"].map(labels.index).to_numpy()]
    wrong = table[table["label"] != table["predicted"]]
    return wrong.sort_values(["confidence", "id"], ascending=[False, True]).head(count).reset_index(drop=True)


def label_mix(oof: pd.DataFrame, truth: pd.Series, test: pd.DataFrame, labels) -> pd.DataFrame:
    """Share of each label: true in the OOF clips, predicted (top label) on them and on the test clips."""
    return pd.DataFrame({
        "train (true)": label_shares(truth.loc[oof["id"]].to_numpy(), labels),
        "train (predicted, OOF)": label_shares(_top_label(oof, labels), labels),
        "test (predicted)": label_shares(_top_label(test, labels), labels),
    })  # fmt: skip


def plot_label_mix(mix: pd.DataFrame, path) -> None:
    fig, ax = plt.subplots(figsize=(9, 4))
    mix.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel("share of clips")
    ax.set_title("Label mix: train vs test predictions (a large gap calls for blend.prior_correction)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_cv(cv_tables: dict[int, pd.DataFrame], blend_tables: dict[int, pd.DataFrame], path,
            metric: str = "accuracy") -> None:  # fmt: skip
    """CV per model and round (mean ± std over folds) and every blend candidate's CV, in ``metric``
    (the competition's: a column of the candidates tables)."""
    fig, ax = plt.subplots(figsize=(9, 4))
    labels, means, errors, colours = [], [], [], []
    for round_, table in sorted(cv_tables.items()):
        for model, row in table.iterrows():
            labels.append(f"r{round_} {model}")
            means.append(row["mean"])
            errors.append(row["std"])
            colours.append("tab:blue")
        candidates = blend_tables[round_]
        for _, row in candidates[candidates["kind"] == "blend"].iterrows():
            labels.append(f"r{round_} blend:{row['candidate']}" + (" *" if row["chosen"] else ""))
            means.append(row[metric])
            errors.append(0)
            colours.append("tab:orange")
    ax.bar(range(len(labels)), means, yerr=errors, color=colours)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    low = max(0.0, min(means) - 0.05) if means else 0
    ax.set_ylim(low, 1)
    ax.set_ylabel(f"CV {metric}")
    ax.set_title("Models (blue, mean ± std over folds) and blends (orange; * chosen)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_submissions(history: pd.DataFrame, path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for column, marker in (("public", "o"), ("private", "s")):
        scores = pd.to_numeric(history[column], errors="coerce")
        ax.scatter(history["cv"], scores, marker=marker, label=column)
    ax.set_xlabel("CV accuracy (the blend's)")
    ax.set_ylabel("leaderboard score")
    ax.legend()
    ax.set_title(f"Submissions: CV vs score ({len(history)})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
