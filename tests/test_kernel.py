"""The code competition's notebook (wavefold.kernel.portable): the blend as data gives the blend's own
test probabilities, the stacker's arithmetic is scikit-learn's, the audio is decoded as the cache holds it."""

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from wavefold import blend
from wavefold import metrics
from wavefold.kernel.portable import blend as portable
from wavefold.competitions.tensorflow_speech import LABELS

C = len(LABELS)


def noisy_models(rng, y, skills, temperatures):
    out = []
    for skill, temperature in zip(skills, temperatures):
        logits = rng.normal(0, 1, (len(y), C))
        logits[np.arange(len(y)), y] += skill
        out.append(blend.scale_temperature(logits, temperature, logs=True))
    return np.stack(out)


@pytest.fixture(scope="module")
def predictions():
    rng = np.random.default_rng(3)
    y = rng.integers(0, C, 1200)
    P = noisy_models(rng, y, (2.0, 2.3, 1.5), (1.0, 0.5, 2.0))
    y_test = rng.integers(0, C, 400)
    y_test[:150] = 11  # a test mix unlike the OOF's: EM and the matching have something to move
    P_test = noisy_models(rng, y_test, (2.0, 2.3, 1.5), (1.0, 0.5, 2.0))
    return blend.Predictions(["a", "b", "c"], P, y, np.arange(len(y)) % 4, P_test, labels=LABELS)


@pytest.mark.parametrize("method", ["a", "mean", "logloss", "accuracy", "stacking"])
@pytest.mark.parametrize("after", ["none", "em_calibrated", "em_trained", "match_mix"])
def test_the_recipe_makes_the_blends_test_probabilities_from_the_members(predictions, method, after):
    """What the notebook applies to the hidden test's member probabilities is what the blend applied to
    the local test's: every combiner, with temperatures, EM from either start, and label-mix matching.
    A recipe that missed a step (the temperatures, EM's calibration, the matching) would differ."""
    settings = blend.BlendSettings(
        method=method, temperature=True, prior_correction="em" if after.startswith("em") else "none",
        em_start="calibrated" if after == "em_calibrated" else "trained", match_mix=after == "match_mix")  # fmt: skip
    result = blend.fit_blend(predictions, settings)
    recipe = result.recipe
    assert recipe["members"] == ["a", "b", "c"] and (recipe["em"] is not None) == after.startswith("em")
    np.testing.assert_allclose(portable.apply_blend(recipe, predictions.test), result.test, rtol=0, atol=1e-12)
    if method != "a":  # the members' test probabilities changed: the recipe follows them, not a copy of the table
        moved = predictions.test[[2, 0, 1]]
        assert np.abs(portable.apply_blend(recipe, moved) - result.test).max() > 0.01


def test_the_stackers_arithmetic_is_scikit_learns(predictions):
    assert portable.EPS == metrics.EPS  # one clipping for the DAG's metrics and the notebook's blend
    model = blend.fit_stacker(predictions.oof[:, :300], predictions.y[:300])
    expected = np.full(predictions.test.shape[1:], portable.EPS)
    expected[:, model.classes_] = model.predict_proba(portable.stack_features(predictions.test))
    np.testing.assert_allclose(blend.apply_stacker(model, predictions.test), blend.normalise(expected), atol=1e-10)
    missing = predictions.y[:300] != 4  # a class the stacker never saw gets EPS, and the rows still sum to 1
    sparse = blend.fit_stacker(predictions.oof[:, :300][:, missing], predictions.y[:300][missing])
    out = blend.apply_stacker(sparse, predictions.test)
    assert out[:, 4].max() < 1e-6 and np.allclose(out.sum(1), 1)


def test_the_submission_rows_are_each_competitions_format():
    """Written by hand: the speech challenge's top label, Freesound 2018's three best space-separated
    (ties: the earlier label first), Freesound 2019's score per label — the workflow's and the notebook's."""
    import pandas as pd

    from wavefold import competitions

    speech = competitions.get("tensorflow-speech-recognition-challenge")
    P = np.full((2, 12), 0.05)
    P[0, 3], P[1, 11] = 0.4, 0.3  # down (yes no up down ...); unknown
    assert speech.submission_table(["a.wav", "b.wav"], P).to_dict("list") == {"fname": ["a.wav", "b.wav"],
                                                                              "label": ["down", "unknown"]}  # fmt: skip
    freesound = competitions.get("freesound-audio-tagging")
    P = np.full((1, 41), 0.01)
    P[0, [7, 2, 30]] = [0.2, 0.3, 0.2]  # 7 and 30 tie: 7 first
    labels = freesound.labels
    assert freesound.submission_table(["c.wav"], P)["label"].tolist() == [f"{labels[2]} {labels[7]} {labels[30]}"]
    tagging = competitions.get("freesound-audio-tagging-2019")
    P = np.random.default_rng(0).random((3, 80))
    table = tagging.submission_table(["d.wav", "e.wav", "f.wav"], P)
    assert list(table.columns) == ["fname", *tagging.labels]
    pd.testing.assert_frame_equal(table.drop(columns="fname"), pd.DataFrame(P, columns=list(tagging.labels)))


# --------------------------------------------------------------------------- export and package


#: A timm backbone with the SED head (architectures/timm.py), not among config.yaml's models.
TIMM_SED = {"architecture": "timm", "params": {"name": "test_efficientnet", "head": "sed", "image_size": [64, 128]}}


@pytest.mark.parametrize("model", ["lenet", "matchboxnet", "m5", "timm_sed"])
def test_an_exported_model_gives_torchs_probabilities_of_the_submission_labels(model, tmp_path):
    """The model in one ONNX graph — from the power spectrum on (numpy's FFT makes it) for the PCEN
    log-mel, MFCC and timm models, from the waveform for m5: the rest of the front end, the network,
    the softmax and a finer label space folded into the submission's 12 labels (words31) — gives what
    the workflow's whole torch model gives on the same clips, at any batch size; no STFT in the graph."""
    import json

    import onnx
    import torch
    import yaml

    from conftest import REPO
    from wavefold import competitions
    from wavefold.kernel import export
    from wavefold.settings.training import TrainSettings
    from wavefold.training import classifier

    speech = competitions.get("tensorflow-speech-recognition-challenge")
    settings = TIMM_SED if model == "timm_sed" else yaml.safe_load((REPO / "config/config.yaml").read_text())["training"]["models"][model]
    settings = TrainSettings.from_config({**settings, "label_space": "words31"})
    classes = list(speech.target_spaces["words31"])
    torch.manual_seed(0)
    net = classifier.Classifier(settings, len(classes))
    classifier.save(net, settings, classes, tmp_path / "model.pt")
    module, info = export.load_for_export(tmp_path / "model.pt", speech)
    export.to_onnx(module, np.zeros((3, 16000), np.float32), tmp_path / "model.onnx")
    clips = (np.random.default_rng(1).normal(0, 2000, (37, 16000))).astype(np.int16)
    check = export.check(module, tmp_path / "model.onnx", clips, threads=1, batch=16)
    assert check.max_difference < export.TOLERANCE and info["architecture"] == settings.architecture
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    kind = "wave" if model == "m5" else "power"
    assert [i.name for i in graph.input] == [kind] and json.loads(info["input"])["kind"] == kind
    assert "STFT" not in {node.op_type for node in graph.node}
    wave = clips[:5].astype(np.float32) / 32768
    got = export.session(tmp_path / "model.onnx", 1).run(None, {kind: module.input_of(wave)})[0]
    with torch.no_grad():
        net.eval()
        logits = net(torch.from_numpy(clips[:5].astype(np.float32) / 32768))
    expected = speech.label_space_of(classes).fold(torch.softmax(logits, 1).numpy())
    assert got.shape == (5, 12)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("window_ms, hop_ms, rate", [(30, 10, 16000), (25, 10, 16000), (40, 20, 32000)])
def test_the_notebooks_spectrum_is_torchs_and_made_once_for_the_graphs_that_share_it(window_ms, hop_ms, rate):
    """portable.spectrum's numpy power spectrum is the front end's torch one (torch.stft: centred,
    reflect-padded, a Hann window shorter than the FFT frame in its middle) to float32 rounding, for
    several windows; every graph that asks for the same spectrum gets the same array, made once."""
    import torch

    from wavefold.features import FrontEnd
    from wavefold.kernel.portable import spectrum
    from wavefold.settings.training import FeatureSettings

    front = FrontEnd("logmel", FeatureSettings(sample_rate=rate, window_ms=window_ms, hop_ms=hop_ms, f_max=rate / 2))
    wave = np.random.default_rng(0).normal(0, 0.1, (3, rate)).astype(np.float32)
    expected = front.power(torch.from_numpy(wave)).numpy()
    got = spectrum.power_spectrogram(wave, **front.spectrum)
    assert got.shape == expected.shape and front.spectrum["win"] < front.spectrum["n_fft"]
    assert np.abs(got - expected).max() < 1e-5 * expected.max()
    power = {"kind": "power", **front.spectrum}
    made = spectrum.inputs_of(wave, [power, {"kind": "wave"}, dict(power)])
    assert made[0] is made[2] and made[1] is wave


def test_an_adabn_model_is_refused_with_the_setting_to_change(tmp_path):
    import torch

    from wavefold import competitions
    from wavefold.kernel import export
    from wavefold.settings.training import TrainSettings
    from wavefold.training import classifier

    speech = competitions.get("tensorflow-speech-recognition-challenge")
    settings = TrainSettings(architecture="matchboxnet", adapt_batch_norm=True)
    classifier.save(classifier.Classifier(settings, 12), settings, list(speech.labels), tmp_path / "model.pt")
    with pytest.raises(export.ExportError, match="adapt_batch_norm"):
        export.load_for_export(tmp_path / "model.pt", speech)
    del torch


def test_the_package_keeps_the_members_the_blend_weighs_and_gives_the_same_blend(predictions):
    """A member of zero weight is left out of the notebook (its models would cost time for nothing); the
    pruned recipe on the kept members' probabilities is the full recipe's output. A teammate's table
    (blend.external) cannot run in a notebook: refused, naming it."""
    from wavefold.kernel import package

    recipe = blend.fit_blend(predictions, blend.BlendSettings(method="accuracy", temperature=True)).recipe
    recipe = {**recipe, "round": 2, "combine": {**recipe["combine"], "weights": [0.6, 0.0, 0.4]}}
    keep = package.needed_members(recipe)
    assert keep == [0, 2]
    pruned = package.pruned(recipe, keep)
    np.testing.assert_allclose(portable.apply_blend(pruned, predictions.test[keep]),
                               portable.apply_blend(recipe, predictions.test), atol=1e-12)  # fmt: skip
    named = {**recipe, "members": ["lenet", "m5_round1", "teammate"]}
    with pytest.raises(package.PackageError, match="teammate"):
        package.member_models(named, ["lenet", "m5"])
    named["combine"] = {**recipe["combine"], "weights": [0.6, 0.4, 0.0]}
    assert package.member_models(named, ["lenet", "m5"]) == {"lenet": (2, "lenet"), "m5_round1": (1, "m5")}


def test_the_notebooks_metadata_turns_internet_off_in_so_many_words():
    """The kaggle client reads a missing enable_internet as true, which a code competition refuses."""
    from wavefold import competitions
    from wavefold.kernel import package

    settings = package.KernelSettings(owner="someone")
    meta = package.kernel_metadata(settings, competitions.get("freesound-audio-tagging-2019"))
    assert meta["enable_internet"] is False and meta["enable_gpu"] is False and meta["is_private"] is True
    assert meta["competition_sources"] == ["freesound-audio-tagging-2019"]
    assert meta["dataset_sources"] == ["someone/wavefold-freesound-audio-tagging-2019-models"]
    assert meta["code_file"] == package.CODE_FILE and meta["kernel_type"] == "script"


# --------------------------------------------------------------------------- the DAG: package and rehearsal


@pytest.fixture(scope="module")
def rehearsed(speech_run, tmp_path_factory):
    """The shared run with submit.kind: notebook — only export, fetch_wheels, package and rehearse run."""
    from conftest import SPEECH_RUN, copy_tree, dummy_wheel, snakemake

    work = copy_tree(speech_run, tmp_path_factory.mktemp("rehearsed") / "run")
    wheels = tmp_path_factory.mktemp("wheelhouse")
    requirement = dummy_wheel(wheels)
    config = {**SPEECH_RUN, "submit": {**SPEECH_RUN["submit"], "kind": "notebook"},
              "kernel": {"wheels": [requirement], "wheels_from": str(wheels), "check_clips": 64}}  # fmt: skip
    temporary = tmp_path_factory.mktemp("rehearsal-tmp")  # where the rule's /kaggle layout goes, and is removed
    result = snakemake(work, config=config, env={**os.environ, "TMPDIR": str(temporary)}, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    assert not list(temporary.glob("wavefold-rehearsal-*"))
    return work, result.stdout + result.stderr, config


def test_the_notebook_rehearsed_offline_without_wavefold_writes_the_dags_submission(rehearsed):
    """The package's notebook, run in an isolated Python where wavefold cannot be imported, on the test
    audio laid out as Kaggle mounts it, writes the DAG's submission.csv row for row; only the four
    notebook steps (and the provenance record of the config) ran (no model re-trained for them); the Dataset holds the ONNX folds of exactly the
    members the final blend weighs, the wheels, and the notebook's metadata turns the internet off."""
    import json
    import re

    import pandas as pd

    work, output, _ = rehearsed
    ran = set(re.findall(r"^(?:local)?rule (\w+):", output, re.M)) - {"all"}
    assert ran == {"export", "fetch_wheels", "package", "rehearse", "provenance"}  # provenance records the config
    mine = pd.read_csv(work / "results/kernel/rehearsal/submission.csv").set_index("fname")
    dags = pd.read_csv(work / "results/submission/submission.csv").set_index("fname")
    assert len(mine) == len(dags) and (mine.loc[dags.index, "label"] == dags["label"]).all()
    summary = json.loads((work / "results/kernel/rehearsal/summary.json").read_text())
    assert summary["rows_differing"] == 0 and summary["clips"] == len(dags) and summary["projected_minutes"] > 0
    dataset, kernel = work / "results/kernel/dataset", work / "results/kernel/notebook"
    recipe = json.loads((dataset / "recipe.json").read_text())
    final = json.loads((work / "results/final/recipe.json").read_text())
    weighed = [final["members"][i] for i in range(len(final["members"]))
               if final["combine"]["kind"] != "member" or i == final["combine"]["member"]]  # fmt: skip
    if final["combine"]["kind"] == "weights":
        weighed = [m for m, w in zip(final["members"], final["combine"]["weights"]) if w > 0]
    assert [m["name"] for m in recipe["members"]] == weighed
    assert sorted(p.name for p in (dataset / "models").iterdir()) == sorted(
        f"{m}_fold{k}.onnx" for m in weighed for k in (0, 1))
    assert [p.name for p in (dataset / "wheels").iterdir()] == ["wavefold_test_wheel-1.0-py3-none-any.whl"]
    assert not list(dataset.rglob("__pycache__"))  # the rehearsal wrote nothing into the package
    meta = json.loads((kernel / "kernel-metadata.json").read_text())
    assert meta["enable_internet"] is False and meta["dataset_sources"] == [json.loads(
        (dataset / "dataset-metadata.json").read_text())["id"]]  # fmt: skip


def copied_package(work: Path, target: Path) -> tuple[Path, Path]:
    import shutil

    dataset = shutil.copytree(work / "results/kernel/dataset", target / "wavefold-models")
    kernel = shutil.copytree(work / "results/kernel/notebook", target / "notebook")
    return dataset, kernel


def test_a_notebook_that_imports_wavefold_or_differs_from_the_dag_fails_its_rehearsal(rehearsed, tmp_path):
    """A package whose script imports wavefold is refused, naming the line; a package whose predictions
    differ from the DAG's (another TTA shift in its recipe) runs, and its rows are named as differing."""
    import json

    import pandas as pd

    from wavefold.kernel import rehearse

    work, _, _ = rehearsed
    extracted = work / "resources/demo-tiny-seed42/extracted"
    dataset, kernel = copied_package(work, tmp_path / "a")
    script = kernel / "inference.py"
    script.write_text(script.read_text().replace("import numpy as np\n", "import numpy as np\nimport wavefold.audio\n", 1))
    with pytest.raises(rehearse.RehearsalError, match=r"inference.py:\d+: wavefold.audio"):
        rehearse.run_notebook(kernel, dataset, extracted, "tensorflow-speech-recognition-challenge", 1, tmp_path / "a.log",
                              Path(tempfile.mkdtemp(dir=tmp_path)))  # fmt: skip

    dataset, kernel = copied_package(work, tmp_path / "b")
    recipe = json.loads((dataset / "recipe.json").read_text())
    recipe["tta_shifts"] = [6000]  # every clip heard 0.375 s late, its end cut off: not what the DAG predicted
    (dataset / "recipe.json").write_text(json.dumps(recipe))
    written, timing = rehearse.run_notebook(kernel, dataset, extracted, "tensorflow-speech-recognition-challenge", 1,
                                            tmp_path / "b.log", Path(tempfile.mkdtemp(dir=tmp_path)))  # fmt: skip
    differing = rehearse.differences(pd.read_csv(written), pd.read_csv(work / "results/submission/submission.csv"),
                                     pd.read_csv(work / "results/final/test.csv"), recipe["submission"],
                                     recipe["labels"], 1e-3)  # fmt: skip
    assert len(differing) > 0 and set(differing["why"]) == {"label"} and timing["clips"] == len(pd.read_csv(written))


def test_a_notebook_over_its_budget_is_refused_with_the_figure():
    from wavefold.kernel import rehearse

    fits = rehearse.Projection(clips=100, seconds=2.0, hidden_clips=158538, budget_minutes=540, threads=4)
    over = rehearse.Projection(clips=100, seconds=30.0, hidden_clips=158538, budget_minutes=540, threads=4)
    assert fits.fits and fits.minutes == pytest.approx(2.0 / 100 * 158538 / 60)
    assert not over.fits and over.describe().startswith("792.7 min of the 540-min budget for 158,538 hidden clips")


# --------------------------------------------------------------------------- submitting the notebook


def notebook_submit(work: Path, stub, tmp_path: Path, kernel: dict, to: str = "kaggle"):
    from conftest import SPEECH_RUN, snakemake

    for path in (work / "results/submit/last.json", work / "results/submissions.csv"):
        path.unlink(missing_ok=True)
    config = {**SPEECH_RUN, "submit": {**SPEECH_RUN["submit"], "kind": "notebook", "to": to},
              "kernel": kernel,
              "kaggle": {"retries": 3, "backoff_seconds": 0.05}}  # fmt: skip
    env = stub.client_env(dict(os.environ), tmp_path) if stub else None
    return snakemake(work, "submit", config=config, env=env, timeout=600)


def json_of(path: Path) -> dict:
    from conftest import json_of_yaml

    return json_of_yaml(path)


@pytest.fixture
def submitting(rehearsed, tmp_path):
    """A copy of the rehearsed run and a stand-in Kaggle whose code submissions score 0.91."""
    from conftest import copy_tree
    from kaggle_stub import KaggleStub

    work = copy_tree(rehearsed[0], tmp_path / "run")
    stub = KaggleStub(code_scorer=lambda version: (0.91, 0.9), processing_polls=2).start()
    yield work, stub, rehearsed[2]["kernel"]
    stub.stop()


def test_a_notebook_is_submitted_through_the_kaggle_client_dataset_first(submitting, tmp_path):
    """snakemake submit, submit.kind notebook, through the real client: the Dataset created with its
    sub-folders zipped (the client skips them otherwise) and waited for while Kaggle processes it, the
    notebook pushed with the internet off and waited for while it runs, then the code submission of
    that version, its score awaited and recorded; the same package again is refused."""
    import pandas as pd

    from conftest import output_of

    work, stub, kernel = submitting
    result = notebook_submit(work, stub, tmp_path, kernel)
    assert result.returncode == 0, output_of(result)[-4000:]
    calls = stub.calls
    order = [calls.index(c) for c in ("GetSubmissionLimits", "CreateDataset", "SaveKernel", "CreateCodeSubmission")]
    assert order == sorted(order)
    assert calls.index("CreateCodeSubmission") > max(i for i, c in enumerate(calls) if c == "GetKernelSessionStatus")
    assert calls.count("GetKernelSessionStatus") == 3  # QUEUED, RUNNING, COMPLETE
    ready = max(i for i, c in enumerate(calls) if c == "GetDatasetStatus")
    assert ready < calls.index("SaveKernel")
    assert calls[calls.index("CreateDataset") : ready + 1].count("GetDatasetStatus") == 3  # processing, processing, READY
    (dataset_id, entry), = stub.datasets.items()
    uploaded = set(entry["versions"][0])
    assert uploaded == {"recipe.json", "models.zip", "portable.zip", "wheels.zip"}  # no .snakemake_timestamp
    (notebook_id, notebook), = stub.kernels.items()
    pushed = notebook["versions"][0]
    assert pushed["enableInternet"] is False and pushed["datasetDataSources"] == [dataset_id]
    assert pushed["competitionDataSources"] == ["tensorflow-speech-recognition-challenge"]
    assert pushed["text"] == (work / "results/kernel/notebook/inference.py").read_text()
    history = pd.read_csv(work / "results/submissions.csv")
    assert history["status"].item() == "complete" and history["public"].item() == pytest.approx(0.91)
    assert stub.submissions[0]["description"] == history["description"].item()

    again = notebook_submit(work, stub, tmp_path, kernel)
    assert again.returncode != 0 and "already among the submissions on Kaggle" in output_of(again)
    assert len(stub.submissions) == 1 and len(entry["versions"]) == 1  # refused before any upload


def test_a_notebook_that_fails_on_kaggle_shows_its_log_and_is_not_submitted(submitting, tmp_path):
    """An existing Dataset gets a new version; a notebook run that ends in ERROR stops the submission
    and shows the last lines of its log; a rate limit on the way is retried."""
    from conftest import output_of

    work, stub, kernel = submitting
    settings = json_of(work / "results/kernel/dataset/dataset-metadata.json")
    stub.datasets[settings["id"]] = {"versions": [{}], "polls": 0}
    stub.kernel_outcome, stub.kernel_log = "ERROR", "loading models\nMemoryError: onnxruntime could not allocate\n"
    stub.fail("GetDatasetStatus", 429, "Too many requests")
    result = notebook_submit(work, stub, tmp_path, kernel)
    assert result.returncode != 0
    text = output_of(result)
    assert "ended in ERROR" in text and "MemoryError: onnxruntime could not allocate" in text
    assert "CreateDatasetVersion" in stub.calls and "CreateDataset" not in stub.calls
    assert "CreateCodeSubmission" not in stub.calls and not stub.submissions
    assert len(stub.datasets[settings["id"]]["versions"]) == 2


def test_the_demo_scores_what_the_rehearsed_notebook_wrote(rehearsed, tmp_path):
    """submit.to: local with a notebook: the hidden solution scores the notebook's own submission.csv."""
    import pandas as pd

    from conftest import copy_tree, output_of
    from wavefold import competitions, submission

    work = copy_tree(rehearsed[0], tmp_path / "run")
    result = notebook_submit(work, None, tmp_path, rehearsed[2]["kernel"], to="local")
    assert result.returncode == 0, output_of(result)[-3000:]
    history = pd.read_csv(work / "results/submissions.csv")
    written = pd.read_csv(work / "results/kernel/rehearsal/submission.csv")
    solution = pd.read_csv(next(work.glob("resources/*/solution.csv")))
    expected = submission.score(written, solution, competitions.get("tensorflow-speech-recognition-challenge"))
    assert history["public"].item() == pytest.approx(expected["public"]) and history["file"].item().endswith(
        "rehearsal/submission.csv")  # fmt: skip


def test_the_notebook_installs_what_the_image_lacks_from_the_datasets_wheels(tmp_path):
    """In a fresh virtual environment (Kaggle's image stands in for it) without the package, the
    notebook's ensure_runtime installs it from the Dataset's wheels/ with pip --no-index, and it imports."""
    import subprocess
    import sys
    import venv

    from conftest import dummy_wheel
    from wavefold.kernel import notebook

    dataset = tmp_path / "dataset"
    dummy_wheel(dataset / notebook.WHEELS)
    venv.create(tmp_path / "image", with_pip=True)
    python = tmp_path / "image/bin/python"
    import numpy  # the image has numpy and pandas: the workflow's stand in for them

    image_site = next((tmp_path / "image/lib").glob("python3*/site-packages"))
    (image_site / "image.pth").write_text(str(Path(numpy.__file__).parents[1]) + "\n")
    check = "import wavefold_test_wheel"
    assert subprocess.run([python, "-c", check], capture_output=True).returncode != 0  # not there before
    code = (f"import sys; sys.path.insert(0, {str(Path(notebook.__file__).parent)!r}); import notebook; "
            f"notebook.ensure_runtime(__import__('pathlib').Path({str(dataset)!r}), 'wavefold_test_wheel')")  # fmt: skip
    environment = {"PATH": "/usr/bin:/bin", "PIP_INDEX_URL": "http://127.0.0.1:9/nowhere", "PIP_NO_INPUT": "1"}
    done = subprocess.run([python, "-I", "-B", "-c", code], capture_output=True, text=True, env=environment, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert subprocess.run([python, "-c", check + "; assert wavefold_test_wheel.VALUE == 1"]).returncode == 0
    del sys


def test_the_inference_bench_times_the_runtimes_on_the_same_clips(rehearsed):
    """bench/inference.py in its smoke mode on the rehearsed run: a row per runtime, onnxruntime's
    probabilities torch's to the export's tolerance, torch the baseline of the ratios."""
    from test_bench import bench, rows_of

    output = bench("inference.py", "--workdir", str(rehearsed[0]), "--clips", "24", "--threads", "1", "--batch", "8",
                   "--fold-models", "1", "--runtimes", "torch", "onnxruntime", "openvino")  # fmt: skip
    rows = rows_of(output, ["torch", "onnxruntime", "openvino"])
    assert {"torch", "onnxruntime"} <= set(rows), output
    assert rows["torch"][2] == "1.00" and float(rows["onnxruntime"][3]) < 1e-4
    assert "openvino" in rows or "openvino: not measured" in output


@pytest.mark.parametrize("shift", [0, 3, -3, 10, -12])
def test_the_tta_shift_is_one_for_numpy_and_torch(shift):
    """The notebook shifts numpy arrays, the workflow torch tensors, by the same function: moved along
    time, zero-filled, never wrapped round (a shift past the clip leaves silence)."""
    import torch

    from wavefold.kernel.portable.audio import shifted

    wave = np.arange(1, 21, dtype=np.float32).reshape(2, 10)
    expected = np.zeros_like(wave)
    n = wave.shape[1]
    for t in range(n):
        if 0 <= t - shift < n:
            expected[:, t] = wave[:, t - shift]
    np.testing.assert_array_equal(shifted(wave, shift), expected)
    np.testing.assert_array_equal(shifted(torch.from_numpy(wave), shift).numpy(), expected)


def test_a_notebook_setting_re_runs_only_the_steps_that_read_it(rehearsed, tmp_path):
    """kernel.threads is the rehearsal's alone (not the export's, nor the package's); kernel.owner names
    the package (not the models): a dry run plans exactly those steps again (and the provenance, which
    records the config)."""
    from conftest import SPEECH_RUN, copy_tree, output_of, snakemake
    from test_dag import jobs_planned

    work, kernel = copy_tree(rehearsed[0], tmp_path / "run"), rehearsed[2]["kernel"]
    planned = {}
    for change in ({"threads": 1}, {"owner": "someone-else"}):
        config = {**SPEECH_RUN, "submit": {**SPEECH_RUN["submit"], "kind": "notebook"}, "kernel": {**kernel, **change}}
        result = snakemake(work, "--dry-run", config=config)
        assert result.returncode == 0, output_of(result)[-3000:]
        planned[next(iter(change))] = jobs_planned(result) - {"all", "provenance"}
    assert planned == {"threads": {"rehearse"}, "owner": {"package", "rehearse"}}
