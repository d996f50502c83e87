"""Rule score_local: the demo's scores on its hidden solution — the submission, and every round's
candidates (models and blends) next to their CV, and the submission's label mix next to the truth's."""

import json

import pandas as pd

from wavefold import blend, competitions, submission
from wavefold.steps import rule_step
from wavefold.tracking import live, summaries

with rule_step(snakemake, "score_local") as log:
    inp, out, p = snakemake.input, snakemake.output, snakemake.params
    solution = pd.read_csv(inp.solution)
    competition = competitions.get(p.competition)
    rounds = pd.read_csv(inp.rounds)
    final_round = int(rounds.loc[rounds["chosen"], "round"].iloc[0])  # the round submitted (rule final_round)
    rows = []
    for round_, candidates_path, labels_path in zip(p.rounds, inp.candidates, inp.candidate_labels):
        candidates = pd.read_csv(candidates_path).set_index("candidate")
        metric = competition.metric_name  # the CV in the competition's metric, as the hidden score is
        chosen, chosen_cv = blend.chosen_candidate(candidates.reset_index(), metric)
        predicted = pd.read_csv(labels_path)
        for column in predicted.columns.drop("fname"):
            if column == "final":  # the chosen candidate as the test gets it (label mix matched, if on)
                name = f"final: {chosen}" + (" (submitted)" if round_ == final_round else "")
                cv = candidates.loc["final", metric] if "final" in candidates.index else chosen_cv
                if round_ == final_round:
                    submitted, final_cv = chosen, cv
            else:
                kind = candidates.loc[column, "kind"]
                name, cv = (column if kind == "model" else f"blend ({column})"), candidates.loc[column, metric]
            rows_of = predicted[["fname", column]].set_axis(["fname", "label"], axis=1)
            hidden = submission.score(rows_of, solution, competition)
            rows.append({"round": round_, "predictions": name, "cv": cv, "hidden": hidden["all"],
                         "public": hidden["public"], "private": hidden["private"]})  # fmt: skip
    final = pd.read_csv(inp.submission)
    scores = submission.score(final, solution, competition)
    scores["blend"], scores["cv"], scores["round"] = submitted, float(final_cv), final_round  # what was submitted
    with open(out.score, "w") as handle:
        json.dump(scores, handle, indent=2)
    table = pd.DataFrame(rows)
    table["cv_minus_hidden"] = table["cv"] - table["hidden"]
    table.to_csv(out.table, index=False, float_format="%.4f")

    mix = pd.read_csv(inp.label_mix).rename(columns={"predicted": "final_round_predicted"})  # the submitted round's
    mix["submission"] = submission.label_shares(competition.predicted_labels(final), competition.labels).to_numpy()
    # (multi-label: the truth's share of (clip, label) pairs, the submission's of top labels)
    truth = competitions.explode_label_sets(solution["label"]) if competition.multi_label else solution["label"]
    mix["truth"] = submission.label_shares(truth, competition.labels).to_numpy()
    mix.to_csv(out.label_mix, index=False, float_format="%.4f")
    log.info("local score of the submission: %s", scores)
    log.info("CV next to the hidden solution's score (the CV should predict it):\n%s", table.to_string(index=False))
    log.info("label mix, submission against the hidden solution:\n%s", mix.round(3).to_string(index=False))
    live.log_to_invocation(live.Context.of(snakemake), summaries.hidden_scores(table, competition.metric_name, final_round))
