"""'snakemake submit' on a copy of the shared speech run: to the local scorer, and through the real
kaggle client to the stand-in server (tests/kaggle_stub.py): scores awaited, duplicates, a failed
upload, refusals explained, retries from the kaggle settings, the history a declared output."""

import io
import os

import pandas as pd
import pytest

from conftest import SPEECH_RUN, copy_tree, output_of, snakemake, speech
from kaggle_stub import KaggleStub
from wavefold import submission

pytestmark = pytest.mark.dag
CONFIG = SPEECH_RUN


@pytest.fixture(scope="module")
def run(speech_run, tmp_path_factory):
    """A copy of the shared run, to submit from (submitting writes results/submit/ and the history)."""
    return copy_tree(speech_run, tmp_path_factory.mktemp("submit") / "run")


@pytest.fixture
def fresh(run):
    """The copy with nothing submitted yet."""
    for path in (run / "results/submit/last.json", run / "results/submissions.csv"):
        path.unlink(missing_ok=True)
    return run


def test_submit_to_the_local_scorer_keeps_a_history_and_refuses_a_duplicate(fresh):
    import json

    result = snakemake(fresh, "submit", config=CONFIG)
    assert result.returncode == 0, output_of(result)[-3000:]
    history = pd.read_csv(fresh / "results/submissions.csv")
    score = json.loads((fresh / "results/submission/local_score.json").read_text())
    assert history["to"].tolist() == ["local"] and history["public"].item() == pytest.approx(score["public"])
    assert (fresh / "results/report/submissions.png").stat().st_size > 0
    (fresh / "results/submit/last.json").unlink()
    again = snakemake(fresh, "submit", config=CONFIG)
    assert again.returncode != 0
    assert "was already submitted to local" in output_of(again)
    # The history is the rule's update() output: kept through the new job, restored after its failure.
    assert len(pd.read_csv(fresh / "results/submissions.csv")) == 1


def test_submit_refuses_a_file_changed_after_the_submission_rule(fresh):
    """A row dropped and a label 'banana' written by hand: never uploaded, never recorded."""
    path = fresh / "results/submission/submission.csv"
    original = path.read_bytes()
    try:
        table = pd.read_csv(path)
        table.loc[0, "label"] = "banana"
        table.drop(index=1).to_csv(path, index=False)
        result = snakemake(fresh, "submit", config=CONFIG)
    finally:
        path.write_bytes(original)
    assert result.returncode != 0
    assert "is not a valid submission, so it was not uploaded" in output_of(result) and "banana" in output_of(result)
    assert not (fresh / "results/submissions.csv").exists()


@pytest.fixture
def stub(fresh):
    solution = pd.read_csv(next(fresh.glob("resources/*/solution.csv")))

    def scorer(data):
        scores = submission.score(pd.read_csv(io.BytesIO(data)), solution, speech())
        return round(scores["public"], 5), round(scores["private"], 5)

    server = KaggleStub(scorer=scorer).start()
    yield server
    server.stop()


def kaggle_submit(run, stub, tmp_path, kaggle=None):
    for path in (run / "results/submit/last.json", run / "results/submissions.csv"):
        path.unlink(missing_ok=True)
    config = {**CONFIG, "submit": {**CONFIG["submit"], "to": "kaggle"},
              "kaggle": kaggle or {"retries": 3, "backoff_seconds": 0.05}}  # fmt: skip
    return snakemake(run, "submit", config=config, env=stub.client_env(dict(os.environ), tmp_path))


def test_submit_through_the_kaggle_client_waits_for_the_score(fresh, stub, tmp_path):
    result = kaggle_submit(fresh, stub, tmp_path)
    assert result.returncode == 0, output_of(result)[-3000:]
    for call in ("GetSubmissionLimits", "StartSubmissionUpload", "PUT upload-1", "CreateSubmission", "ListSubmissions"):
        assert call in stub.calls
    assert stub.calls.index("GetSubmissionLimits") < stub.calls.index("StartSubmissionUpload")
    history = pd.read_csv(fresh / "results/submissions.csv")
    assert history["status"].item() == "complete"
    expected = submission.score(pd.read_csv(fresh / "results/submission/submission.csv"),
                                pd.read_csv(next(fresh.glob("resources/*/solution.csv"))), speech())  # fmt: skip
    assert history["public"].item() == pytest.approx(expected["public"], abs=1e-5)
    description = stub.submissions[0]["description"]
    assert description.startswith("wavefold ") and "config " in description and "sha256 " in description
    # The same file again: refused from the server's list even without our own log.
    again = kaggle_submit(fresh, stub, tmp_path)
    assert again.returncode != 0 and "already among the submissions on Kaggle" in output_of(again)
    assert len(stub.submissions) == 1


def test_a_failed_upload_is_detected(fresh, stub, tmp_path):
    stub.failing_uploads = 1  # the client prints "Could not submit" and returns normally
    result = kaggle_submit(fresh, stub, tmp_path)
    assert result.returncode != 0
    assert "did not become a submission" in output_of(result)
    assert not (fresh / "results/submissions.csv").exists()


def test_kaggle_refusals_are_explained(fresh, stub, tmp_path):
    stub.fail("StartSubmissionUpload", 403, "You must accept this competition's rules before you'll be able to submit.")
    result = kaggle_submit(fresh, stub, tmp_path)
    assert result.returncode != 0 and "/rules" in output_of(result)
    assert "Traceback" not in output_of(result).split("wavefold submit")[1][:300]


@pytest.mark.parametrize("retries", [2, 4])
def test_rate_limits_are_retried_as_the_kaggle_settings_say(fresh, stub, tmp_path, retries):
    """kaggle.retries attempts with kaggle.backoff_seconds between them (the download's settings, which
    the error names): a 429 on every attempt fails after exactly that many, naming the settings."""
    stub.fail("GetSubmissionLimits", 429, "Too many requests", times=retries)
    result = kaggle_submit(fresh, stub, tmp_path, kaggle={"retries": retries, "backoff_seconds": 0.05})
    assert result.returncode != 0
    assert f"after {retries} attempts" in output_of(result) and "kaggle.retries" in output_of(result)
    assert stub.calls.count("GetSubmissionLimits") == retries
    assert "StartSubmissionUpload" not in stub.calls


def test_a_rate_limit_that_passes_is_retried_to_a_submission(fresh, stub, tmp_path):
    stub.fail("GetSubmissionLimits", 429, "Too many requests", times=2)
    result = kaggle_submit(fresh, stub, tmp_path, kaggle={"retries": 3, "backoff_seconds": 0.05})
    assert result.returncode == 0, output_of(result)[-3000:]
    assert stub.calls.count("GetSubmissionLimits") == 3 and len(stub.submissions) == 1


def test_no_submissions_left_today(fresh, stub, tmp_path):
    stub.daily_limit = 0
    result = kaggle_submit(fresh, stub, tmp_path)
    assert result.returncode != 0 and "allows no more submissions" in output_of(result)
    assert "StartSubmissionUpload" not in stub.calls
