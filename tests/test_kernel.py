"""The code competition's notebook (wavefold.kernel.portable): the blend as data gives the blend's own
test probabilities, the stacker's arithmetic is scikit-learn's, the audio is decoded as the cache holds it."""

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


@pytest.mark.parametrize("model", ["lenet", "matchboxnet", "m5"])
def test_an_exported_model_gives_torchs_probabilities_of_the_submission_labels(model, tmp_path):
    """The whole model in one ONNX graph — PCEN log-mel, MFCC or waveform front end, the network, the
    softmax and a finer label space folded into the submission's 12 labels (words31) — gives what the
    workflow's torch model gives on the same clips, at any batch size."""
    import torch
    import yaml

    from conftest import REPO
    from wavefold import competitions
    from wavefold.kernel import export
    from wavefold.settings.training import TrainSettings
    from wavefold.training import classifier

    speech = competitions.get("tensorflow-speech-recognition-challenge")
    settings = yaml.safe_load((REPO / "config/config.yaml").read_text())["training"]["models"][model]
    settings = TrainSettings.from_config({**settings, "label_space": "words31"})
    classes = list(speech.target_spaces["words31"])
    torch.manual_seed(0)
    net = classifier.Classifier(settings, len(classes))
    classifier.save(net, settings, classes, tmp_path / "model.pt")
    module, info = export.load_for_export(tmp_path / "model.pt", speech)
    export.to_onnx(module, torch.zeros(3, 16000), tmp_path / "model.onnx")
    clips = (np.random.default_rng(1).normal(0, 2000, (37, 16000))).astype(np.int16)
    check = export.check(module, tmp_path / "model.onnx", clips, threads=1, batch=16)
    assert check.max_difference < export.TOLERANCE and info["architecture"] == settings.architecture
    got = export.session(tmp_path / "model.onnx", 1).run(None, {"wave": clips[:5].astype(np.float32) / 32768})[0]
    with torch.no_grad():
        net.eval()
        logits = net(torch.from_numpy(clips[:5].astype(np.float32) / 32768))
    expected = speech.label_space_of(classes).fold(torch.softmax(logits, 1).numpy())
    assert got.shape == (5, 12)
    np.testing.assert_allclose(got, expected, atol=1e-5)


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


def dummy_wheel(folder: Path, name: str = "wavefold_test_wheel", version: str = "1.0") -> str:
    """A pure-Python wheel (any platform) the test makes: what rule fetch_wheels fetches offline here."""
    import base64
    import hashlib
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": "VALUE = 1\n", f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}  # fmt: skip
    record = [f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
              f"{len(text.encode())}" for path, text in files.items()] + [f"{info}/RECORD,,"]  # fmt: skip
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in {**files, f"{info}/RECORD": "\n".join(record) + "\n"}.items():
            wheel.writestr(path, text)
    return f"{name.replace('_', '-')}=={version}"


@pytest.fixture(scope="module")
def rehearsed(speech_run, tmp_path_factory):
    """The shared run with submit.kind: notebook — only export, fetch_wheels, package and rehearse run."""
    from conftest import SPEECH_RUN, copy_tree, snakemake

    work = copy_tree(speech_run, tmp_path_factory.mktemp("rehearsed") / "run")
    wheels = tmp_path_factory.mktemp("wheelhouse")
    requirement = dummy_wheel(wheels)
    config = {**SPEECH_RUN, "submit": {**SPEECH_RUN["submit"], "kind": "notebook"},
              "kernel": {"wheels": [requirement], "wheels_from": str(wheels), "check_clips": 64}}  # fmt: skip
    result = snakemake(work, config=config, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return work, result.stdout + result.stderr


def test_the_notebook_rehearsed_offline_without_wavefold_writes_the_dags_submission(rehearsed):
    """The package's notebook, run in an isolated Python where wavefold cannot be imported, on the test
    audio laid out as Kaggle mounts it, writes the DAG's submission.csv row for row; only the four
    notebook steps (and the provenance record of the config) ran (no model re-trained for them); the Dataset holds the ONNX folds of exactly the
    members the final blend weighs, the wheels, and the notebook's metadata turns the internet off."""
    import json
    import re

    import pandas as pd

    work, output = rehearsed
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
    """A package whose script imports wavefold is refused, naming the line; a package whose blend
    differs from the DAG's (its members' weights swapped) runs, and its rows are named as differing."""
    import json

    import pandas as pd

    from wavefold.kernel import rehearse

    work, _ = rehearsed
    extracted = work / "resources/demo-tiny-seed42/extracted"
    dataset, kernel = copied_package(work, tmp_path / "a")
    script = kernel / "inference.py"
    script.write_text(script.read_text().replace("import numpy as np\n", "import numpy as np\nimport wavefold.audio\n", 1))
    with pytest.raises(rehearse.RehearsalError, match=r"inference.py:\d+: wavefold.audio"):
        rehearse.run_notebook(kernel, dataset, extracted, "tensorflow-speech-recognition-challenge", 1, tmp_path / "a.log")

    dataset, kernel = copied_package(work, tmp_path / "b")
    recipe = json.loads((dataset / "recipe.json").read_text())
    folds = [m["folds"] for m in recipe["members"]]
    if len(folds) > 1:  # each member runs the other's models
        for member, files in zip(recipe["members"], folds[::-1]):
            member["folds"] = files
    else:  # one member: its fold-0 model in place of its fold 1
        recipe["members"][0]["folds"] = [folds[0][0]] * len(folds[0])
    (dataset / "recipe.json").write_text(json.dumps(recipe))
    written, timing = rehearse.run_notebook(kernel, dataset, extracted, "tensorflow-speech-recognition-challenge", 1,
                                            tmp_path / "b.log")  # fmt: skip
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
