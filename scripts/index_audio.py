"""Rule index: check every clip and write the train/test/noise manifests and the problems file."""

from pathlib import Path

from wavefold import competitions, index
from wavefold.audio import AudioPolicy
from wavefold.steps import rule_step

with rule_step(snakemake, "index") as log:
    root, out = Path(snakemake.input.root), snakemake.output
    competition = competitions.get(snakemake.params.competition)
    policy = AudioPolicy.from_config(snakemake.params.audio)
    train, noise, train_problems = index.index_train(root, competition, policy, snakemake.threads)
    test, test_problems = index.index_test(root, competition, policy, snakemake.threads)
    problems = index.problems_frame(train_problems + test_problems)
    train.to_csv(out.train, index=False)
    test.to_csv(out.test, index=False)
    noise.to_csv(out.noise, index=False)
    problems.to_csv(out.problems, index=False)
    log.info("\n%s", index.summarise(train, test, noise, problems))
