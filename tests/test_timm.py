"""timm backbones (architectures/timm.py): weights from a file or from timm's own source with no
network, the first convolution folded to one channel, and the SED head's attention over time."""

import math
import os
import subprocess
import sys

import pytest
import safetensors.torch
import timm
import torch

from conftest import REPO
from wavefold.architectures.timm import AttentionPool
from wavefold.features import FrontEnd
from wavefold.models import create_model

NAME = "test_efficientnet"  # timm's smallest CNN (0.1 M parameters): made for tests like these


def imagenet_like(seed: int = 1) -> dict[str, torch.Tensor]:
    """The state dict of a three-channel, 1000-class model: what a pretrained file holds."""
    torch.manual_seed(seed)
    return timm.create_model(NAME, in_chans=3, num_classes=1000).state_dict()


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
    hub_id = timm.models.get_pretrained_cfg(NAME).hf_hub_id  # e.g. timm/test_efficientnet.r160_in1k
    repo = tmp_path / "hub" / f"models--{hub_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "snapshots" / commit).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    safetensors.torch.save_file(weights, repo / "snapshots" / commit / "model.safetensors")
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
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "home")}
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


def test_the_sed_head_gives_a_logit_per_label_for_any_clip_length():
    torch.manual_seed(0)
    model = create_model("timm", 7, name=NAME, head="sed").eval()
    front = FrontEnd("logmel")
    assert model(front(torch.randn(2, 16000) * 0.1)).shape == (2, 7)
    assert model(front(torch.randn(1, 80000) * 0.1)).shape == (1, 7)
