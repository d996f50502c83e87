"""timm backbones (architectures/timm.py): weights from a file or from timm's own source with no
network, the first convolution folded to one channel, and the SED head's attention over time."""

import math
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import safetensors.torch
import timm
import torch

from conftest import REPO, SPEECH_BACKBONE, from_backbone, output_of, snakemake
from test_dag import jobs_planned
from wavefold.architectures.timm import AttentionPool
from wavefold.features import FrontEnd
from wavefold.models import create_model

NAME = "test_efficientnet"  # timm's smallest CNN (0.1 M parameters): made for tests like these


def imagenet_like(seed: int = 1) -> dict[str, torch.Tensor]:
    """The state dict of a three-channel, 1000-class model: what a pretrained file holds."""
    torch.manual_seed(seed)
    return timm.create_model(NAME, in_chans=3, num_classes=1000).state_dict()


def hub_cache(folder, weights: dict[str, torch.Tensor]) -> dict[str, str]:
    """A Hugging Face cache, laid out as huggingface_hub lays it out, holding ``weights`` as timm's own
    for NAME; the environment that makes timm read it offline."""
    hub_id = timm.models.get_pretrained_cfg(NAME).hf_hub_id  # e.g. timm/test_efficientnet.r160_in1k
    repo = folder / f"models--{hub_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    safetensors.torch.save_file(weights, repo / "snapshots" / commit / "model.safetensors")
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(folder), "HF_HOME": str(folder.parent / "hf-home")}


def assert_loaded(model, weights: dict[str, torch.Tensor]) -> None:
    """Every backbone tensor is the file's; the stem's three colour channels summed into one (timm's
    adapt_input_conv); the file's classifier is not in the model."""
    own = model.backbone.state_dict()
    assert set(own) == set(weights) - {"classifier.weight", "classifier.bias"}
    for key, value in own.items():
        expected = weights[key].sum(dim=1, keepdim=True) if key == "conv_stem.weight" else weights[key]
        torch.testing.assert_close(value, expected, rtol=0, atol=1e-6, msg=key)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_weights_file_is_loaded_into_a_one_channel_backbone(tmp_path, suffix):
    weights = imagenet_like()
    path = tmp_path / f"weights{suffix}"
    safetensors.torch.save_file(weights, path) if suffix == ".safetensors" else torch.save(weights, path)
    model = create_model("timm", 12, name=NAME, pretrained=str(path))
    assert_loaded(model, weights)
    torch.manual_seed(0)
    scratch = create_model("timm", 12, name=NAME)  # the same model without the file: other weights
    assert not torch.equal(scratch.backbone.state_dict()["conv_stem.weight"], model.backbone.state_dict()["conv_stem.weight"])
    assert model(FrontEnd("logmel")(torch.randn(2, 16000) * 0.1)).shape == (2, 12)


def test_a_missing_or_unknown_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="neither 'timm', 'none' nor a weights file"):
        create_model("timm", 12, name=NAME, pretrained=str(tmp_path / "absent.pth"))
    (tmp_path / "weights.txt").write_text("no")
    with pytest.raises(ValueError, match="weights.txt"):
        create_model("timm", 12, name=NAME, pretrained=str(tmp_path / "weights.txt"))
    with pytest.raises(ValueError, match="head"):
        create_model("timm", 12, name=NAME, head="gru")


def test_timms_own_weights_come_from_the_hugging_face_cache_offline(tmp_path):
    """pretrained: timm, HF_HUB_OFFLINE=1 (no network): timm finds the weights for the model's
    Hugging Face id in a cache laid out as huggingface_hub lays it out (the test writes it)."""
    weights = imagenet_like(seed=2)
    env = hub_cache(tmp_path / "hub", weights)
    torch.save(weights, tmp_path / "expected.pt")
    code = f"""
import shutil, sys, torch
sys.path[:0] = [{str(REPO / 'scripts')!r}, {str(REPO / 'tests')!r}]
from test_timm import assert_loaded
from wavefold.models import create_model
assert_loaded(create_model("timm", 12, name={NAME!r}, pretrained="timm"), torch.load({str(tmp_path / 'expected.pt')!r}))
print("loaded")
shutil.rmtree({str(tmp_path / 'hub')!r})
try:  # without the cache, offline: an error, not random weights
    create_model("timm", 12, name={NAME!r}, pretrained="timm")
except Exception as error:
    print("refused:", type(error).__name__)
"""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "loaded" in done.stdout and "refused:" in done.stdout, done.stdout + done.stderr[-3000:]


def test_the_sed_heads_attention_weighs_frames_into_the_clips_logit():
    """Two channels, three frames: channel 0 is the frame's logit, channel 1 the attention's. The clip's
    logit is sum_t softmax_t(tanh(a_t)) * z_t, worked out by hand — not the frames' mean."""
    pool = AttentionPool(channels=2, n_classes=1)
    with torch.no_grad():
        pool.frame.weight[:] = torch.tensor([[[1.0], [0.0]]])
        pool.attention.weight[:] = torch.tensor([[[0.0], [1.0]]])
        pool.frame.bias.zero_()
        pool.attention.bias.zero_()
    x = torch.tensor([[[2.0, 0.0, -4.0], [10.0, -10.0, -10.0]]])
    e = [math.exp(math.tanh(a)) for a in (10.0, -10.0, -10.0)]
    expected = sum(w / sum(e) * z for w, z in zip(e, (2.0, 0.0, -4.0)))  # 0.787 * 2 + 0.107 * -4 = 1.148
    assert pool(x).item() == pytest.approx(expected, abs=1e-5) and expected == pytest.approx(1.148, abs=1e-3)
    assert abs(pool(x).item() - (2.0 + 0.0 - 4.0) / 3) > 1.5


@pytest.mark.parametrize("name", ["test_resnet", "test_convnext", "test_nfnet", "test_byobnet", "mobilenetv3_small_050"])
def test_cnn_families_give_a_logit_per_label_from_their_feature_map(name):
    """The head sits on timm's feature map (forward_features), whatever the family: MobileNetV3 keeps
    a conv_head after its pooling, which reads 576 channels where its features have 1024 (taking the
    backbone's full forward instead fails there); a transformer is refused with a clear error."""
    torch.manual_seed(0)
    spectrogram = FrontEnd("logmel")(torch.randn(2, 16000) * 0.1)
    for head in ("pool", "sed"):
        assert create_model("timm", 7, name=name, head=head).eval()(spectrogram).shape == (2, 7)


def test_a_transformer_backbone_is_refused_with_the_reason():
    model = create_model("timm", 7, name="test_vit", image_size=[160, 160]).eval()
    with pytest.raises(ValueError, match="only CNN-like backbones"):
        model(FrontEnd("logmel")(torch.randn(1, 16000) * 0.1))


def test_the_sed_head_gives_a_logit_per_label_for_any_clip_length():
    torch.manual_seed(0)
    model = create_model("timm", 7, name=NAME, head="sed").eval()
    front = FrontEnd("logmel")
    assert model(front(torch.randn(2, 16000) * 0.1)).shape == (2, 7)
    assert model(front(torch.randn(1, 80000) * 0.1)).shape == (1, 7)


def test_a_wavefold_model_of_another_task_gives_its_backbone_and_the_new_task_a_new_head(tmp_path):
    """Transfer: a finished wavefold model (4 labels, here saved as the train rule saves it) as the
    weights of a 12-label model: every backbone tensor is the source's, the head is new and of 12
    labels; a model of another backbone is refused, naming both; and the saved 12-label model loads
    again once the source file is gone (its own weights replace the pretrained ones)."""
    from wavefold.settings.training import TrainSettings
    from wavefold.training import classifier

    torch.manual_seed(3)
    source_settings = TrainSettings(architecture="timm", params={"name": NAME, "head": "sed"})
    source = classifier.Classifier(source_settings, 4)
    source_file = tmp_path / "source" / "model.pt"
    source_file.parent.mkdir()
    classifier.save(source, source_settings, ["a", "b", "c", "d"], source_file)
    settings = TrainSettings(architecture="timm", params={"name": NAME, "pretrained": str(source_file)})
    model = classifier.Classifier(settings, 12)
    for key, value in source.net.backbone.state_dict().items():
        torch.testing.assert_close(model.net.backbone.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert model.net.head.weight.shape[0] == 12  # a pool head for 12 labels: nothing of the source's SED head
    with pytest.raises(ValueError, match=f"wavefold model of timm {NAME}, not of timm backbone test_resnet"):
        create_model("timm", 12, name="test_resnet", pretrained=str(source_file))
    saved = tmp_path / "fine-tuned.pt"
    classifier.save(model, settings, [str(i) for i in range(12)], saved)
    source_file.unlink()
    again = classifier.load(saved, torch.device("cpu"))[0]
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_the_weights_setting_is_checked_without_torch_and_each_file_once(tmp_path, monkeypatch):
    """The parse's side (wavefold.weights): a missing file or another suffix is named with the fix, no
    Python started; a file that fits is checked in a Python of its own once, and its verdict kept (the
    second parse reads it); pretrained: timm is the file fetch_weights will make."""
    from wavefold import weights

    monkeypatch.chdir(tmp_path)
    setting = "training.models.m.params.pretrained"

    def problems(pretrained, name=NAME):
        return weights.problems(weights.of_model({"params": {"name": name, "pretrained": pretrained}}, setting))

    assert "absent.pth does not exist" in problems("absent.pth")[0] and str(tmp_path) in problems("absent.pth")[0]
    assert "is neither none, timm nor a weights file" in problems("weights.onnx")[0]
    assert "set params.name" in problems("timm", name="")[0]
    assert weights.of_model({"params": {"name": NAME}}, setting) is None
    fetched = weights.of_model({"params": {"name": NAME, "pretrained": "timm"}}, setting)
    assert fetched.fetched and fetched.path == f"resources/weights/timm/{NAME}.safetensors" and not weights.problems(fetched)
    safetensors.torch.save_file(imagenet_like(), tmp_path / "fits.safetensors")
    started, run = [], subprocess.run
    monkeypatch.setattr(weights.subprocess, "run", lambda *a, **k: started.append(a) or run(*a, **k))
    assert problems("fits.safetensors") == problems("fits.safetensors") == []
    assert len(started) == 1 and len(list((tmp_path / "resources/weights/checked").iterdir())) == 1


#: A pretrained timm model fine-tuned the winners' way on the tiny speech demo (measured: macro recall
#: 0.46 over the 12 labels, chance 1/12; with batch 32 and no accumulation 0.38).
FINE_TUNED = {
    "architecture": "timm", "params": {"name": NAME, "pretrained": "weights/effnet.safetensors"},
    "epochs": 12, "batch_size": 16, "lr": 0.01, "freeze_epochs": 1, "backbone_lr_ratio": 0.5, "accumulate": 2,
}  # fmt: skip
CV = "results/cv/round1/cv.csv"


def with_model(**model) -> dict:
    return {**SPEECH_BACKBONE, "training": {"run": ["effnet"], "models": {"effnet": {**FINE_TUNED, **model}}}}


@pytest.mark.dag
def test_a_pretrained_timm_model_fine_tunes_in_the_dag_and_its_weights_file_is_part_of_its_identity(
    speech_backbone, tmp_path
):
    """Through the real snakemake on the tiny speech demo: a timm backbone from a weights file, frozen
    for an epoch, at half the head's rate, two batches a step, learns the words (macro recall well
    above chance: a model stuck on silence and unknown scores ~0.19). The same file again re-runs
    nothing; the file's content changed under its old time re-trains (its hash, not its time); a file
    of another model is refused when the workflow is parsed, naming the setting; pretrained: timm is
    fetched by the localrule fetch_weights from timm's cache, offline, and the jobs read that file; tune
    choosing among backbones fetches each choice's weights."""
    workdir = from_backbone(speech_backbone, tmp_path / "run")
    weights = workdir / "weights" / "effnet.safetensors"
    weights.parent.mkdir()
    safetensors.torch.save_file(imagenet_like(seed=4), weights)
    result = snakemake(workdir, CV, config=with_model())
    assert result.returncode == 0, output_of(result)[-4000:]
    recall = pd.read_csv(workdir / "results/cv/round1/per_class.csv", index_col=0).loc["effnet"]
    assert recall.mean() >= 0.25 and (recall.drop(["silence", "unknown"]) > 0).sum() >= 6, recall
    log = (workdir / "logs/train/round1/effnet/fold0.log").read_text()
    assert "backbone frozen for 1 epochs, at lr x 0.5; one step per 2 batches (32 clips)" in log

    assert "Nothing to be done" in output_of(snakemake(workdir, CV, "--dry-run", config=with_model()))
    times = weights.stat()
    safetensors.torch.save_file(imagenet_like(seed=5), weights)
    os.utime(weights, ns=(times.st_atime_ns, times.st_mtime_ns))
    again = output_of(snakemake(workdir, CV, "--dry-run", config=with_model()))
    retrained = sorted(re.findall(r"rule train:.*?wildcards: round=1, model=(\w+), fold=(\d)", again, flags=re.S))
    assert retrained == [("effnet", "0"), ("effnet", "1")] and "Params have changed" in again

    torch.save(timm.create_model("test_resnet", num_classes=1000).state_dict(), workdir / "weights/resnet.pth")
    wrong = snakemake(workdir, CV, "--dry-run", config=with_model(params={"name": NAME, "pretrained": "weights/resnet.pth"}))
    assert wrong.returncode != 0 and "Traceback" not in output_of(wrong)
    assert (f"training.models.effnet.params.pretrained: weights/resnet.pth does not fit backbone {NAME}"
            in output_of(wrong)) and "holds 92 tensors: conv1.0.weight" in output_of(wrong)  # fmt: skip

    hub_weights = imagenet_like(seed=6)
    offline = hub_cache(tmp_path / "hub", hub_weights)
    from_timm = with_model(params={"name": NAME, "pretrained": "timm"})
    planned = output_of(snakemake(workdir, CV, "--dry-run", config=from_timm, env=offline))
    fetched = f"resources/weights/timm/{NAME}.safetensors"
    assert "rule fetch_weights:" in planned and re.search(rf"rule train:\n\s+input: [^\n]*{fetched}", planned)
    # tune choosing among backbones: the weights of each choice fetched (a file, of one backbone, refused)
    space = {"params.name": {"choices": [NAME, "test_resnet"]}}
    tuning = {**from_timm, "tune": {"model": "effnet", "space": space}}
    planned = snakemake(workdir, "tune", "--dry-run", config=tuning)
    assert jobs_planned(planned) == {"fetch_weights", "tune"} and output_of(planned).count("rule fetch_weights:") == 2
    refused = snakemake(workdir, "tune", "--dry-run", config={**tuning, "training": with_model()["training"]})
    assert refused.returncode != 0 and "tune cannot choose among backbones" in output_of(refused)
    result = snakemake(workdir, fetched, config=from_timm, env=offline)
    assert result.returncode == 0, output_of(result)[-3000:]
    saved = safetensors.torch.load_file(workdir / fetched)
    assert saved.keys() == hub_weights.keys() and all(torch.equal(saved[k], hub_weights[k]) for k in saved)


def test_image_size_resizes_the_spectrogram_before_the_backbone():
    """image_size [64, 96]: whatever the mel bins and frames, the backbone sees a 64 x 96 image (its
    feature map is then 2 x 3 after test_efficientnet's 32x downsampling); without it, the spectrogram's own."""
    torch.manual_seed(0)
    seen = []
    model = create_model("timm", 5, name=NAME, image_size=[64, 96]).eval()
    model.backbone.conv_stem.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    model.backbone.bn2.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    spectrogram = FrontEnd("logmel")(torch.randn(2, 16000) * 0.1)  # 40 mels x 101 frames
    assert model(spectrogram).shape == (2, 5)
    assert tuple(seen[0][-2:]) == (64, 96) and tuple(seen[1][-2:]) == (2, 3)
    plain = create_model("timm", 5, name=NAME).eval()
    plain.backbone.conv_stem.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    plain(spectrogram)
    assert tuple(seen[2][-2:]) == tuple(spectrogram.shape[-2:])
    with pytest.raises(ValueError, match="image_size"):
        create_model("timm", 5, name=NAME, image_size=[64])
