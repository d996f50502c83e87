import sys
from pathlib import Path

import pytest
import torch
import torchaudio

from conftest import REPO
from wavefold import architectures, dependencies
from wavefold.features import FeatureSettings, FrontEnd
from wavefold.models import REGISTRY, create_model, input_kind, parameter_count
from wavefold.settings.training import architecture_names

# Parameter counts for 12 classes with default settings, with the published figure where there is one.
EXPECTED_PARAMETERS = {
    "lenet": 72_796,
    "res15": 219_657,  # Tang & Lin report 238K
    "bc_resnet": 324_012,  # BC-ResNet-8: 321K in Kim et al.
    "m5": 559_244,
    "matchboxnet": 87_108,  # 3x2x64: 77K in Majumdar & Ginsburg (for 30+ classes, 64 MFCCs)
    "mobilenetv2": 404_620,
    "timm": 4_022_344,  # efficientnet_b0 (timm's default here) for one channel, without its 1000-class head
}


def test_registry_has_seven_architectures_and_three_input_kinds():
    assert set(REGISTRY) == set(EXPECTED_PARAMETERS)
    assert {input_kind(name) for name in REGISTRY} == {"logmel", "mfcc", "waveform"}


def test_architectures_are_found_one_way_without_torch_by_every_reader():
    """The registry (imported), the settings' allowed values (read without torch) and each model's
    job code (wavefold.dependencies) come from the one list of architectures/; a helper module of
    that folder that registers nothing (blocks.py) is none of them."""
    found = architectures.declared()
    assert set(found) == set(REGISTRY) == architecture_names() and "blocks" not in found
    for name, module in found.items():
        assert module == architectures.module_of(name) == Path(sys.modules[REGISTRY[name].__module__].__file__)
        code = dependencies.model_modules(REPO / "scripts/train.py", name)
        assert str(module) in code and not {str(m) for m in found.values()} - {str(module)} & set(code)
    assert "blocks.py" in {Path(m).name for m in dependencies.model_modules(REPO / "scripts/train.py", "res15")}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_output_shape_and_parameter_count(name):
    torch.manual_seed(0)
    model = create_model(name, 12)
    assert parameter_count(model) == EXPECTED_PARAMETERS[name]
    front = FrontEnd(input_kind(name))
    wave = torch.randn(3, 16000) * 0.1
    assert model(front(wave)).shape == (3, 12)
    # Global pooling: another clip length works unchanged.
    assert model(front(torch.randn(2, 12000) * 0.1)).shape == (2, 12)
    assert create_model(name, 31)(front(wave)).shape == (3, 31)


def test_unknown_names_and_parameters_are_clear_errors():
    with pytest.raises(KeyError, match="registered"):
        create_model("resnet9000", 12)
    with pytest.raises(TypeError, match="lenet"):
        create_model("lenet", 12, depth=3)


def test_front_end_shapes():
    wave = torch.randn(2, 16000)
    assert FrontEnd("logmel", FeatureSettings(n_mels=64))(wave).shape == (2, 1, 64, 101)
    assert FrontEnd("mfcc", FeatureSettings(n_mfcc=20))(wave).shape == (2, 1, 20, 101)
    assert FrontEnd("waveform")(wave).shape == (2, 1, 16000)
    normalised = FrontEnd("logmel")(wave)
    assert abs(normalised[0].mean().item()) < 1e-4 and abs(normalised[0].std().item() - 1) < 1e-2
    with pytest.raises(ValueError, match=r"features.n_mel: unknown setting; known: .*n_mels"):
        FeatureSettings.from_config({"n_mel": 40})


@pytest.mark.parametrize("kind", ["logmel", "mfcc"])
def test_band_normalisation_removes_a_recording_devices_eq(kind):
    """A device's EQ is a constant offset per band in log features: `band` must take it out, where
    `instance` (one mean per clip) leaves it in the features the model sees."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    envelope = torch.exp(-(((t - 0.5) / 0.15) ** 2))
    wave = 0.3 * envelope * (torch.randn(4, 16000, generator=generator) + 0.3 * torch.sin(2 * torch.pi * 300 * t))
    device = torchaudio.functional.equalizer_biquad(wave, 16000, 1000.0, 12.0, 0.7)
    device = torchaudio.functional.equalizer_biquad(device, 16000, 3000.0, -12.0, 0.7)

    def change(how: str) -> float:
        front = FrontEnd(kind, FeatureSettings(normalise=how))
        clean, recorded = front(wave), front(device)
        return ((clean - recorded).pow(2).mean() / clean.pow(2).mean()).item()

    assert change("band") < change("instance") / 5
    banded = FrontEnd(kind, FeatureSettings(normalise="band"))(wave)
    assert banded.mean(dim=3).abs().max() < 1e-4  # every band centred over the clip
    assert abs(banded[0].std().item() - 1) < 1e-2
    with pytest.raises(ValueError, match="features.normalise"):
        FeatureSettings.from_config({"normalise": "per_band"})


def test_pcen_is_librosas_and_follows_a_changing_level():
    """features.compression: pcen computes what librosa.pcen does (given the same settled start), and,
    being a gain control per band, takes out a level that changes within the clip (20 dB over the
    second, a speaker walking toward the microphone), which a log and per-clip normalisation cannot."""
    import librosa
    import numpy as np
    import scipy.signal
    from wavefold import features

    mel = torch.from_numpy(np.random.default_rng(0).gamma(0.5, 1e-4, (3, 40, 101)))
    scaled = features.PCEN_SCALE * mel.numpy()
    frames = features.PCEN_SECONDS * 100
    b = (np.sqrt(1 + 4 * frames**2) - 1) / (2 * frames**2)
    settled = scipy.signal.lfilter_zi([b], [1, b - 1])[0] * scaled[..., :1]
    expected = librosa.pcen(scaled, sr=100, hop_length=1, zi=settled)
    np.testing.assert_allclose(features.pcen(mel, 100.0).numpy(), expected, rtol=1e-9, atol=1e-9)
    # The exportable form (the smoother as a matrix product, for ONNX) is the same filter.
    np.testing.assert_allclose(features.pcen(mel, 100.0, by_matrix=True).numpy(), expected, rtol=1e-9, atol=1e-9)

    generator = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    envelope = torch.exp(-(((t - 0.5) / 0.15) ** 2))
    wave = 0.3 * envelope * (torch.randn(4, 16000, generator=generator) + 0.3 * torch.sin(2 * torch.pi * 300 * t))
    wave = wave + 0.01 * torch.randn(4, 16000, generator=generator)
    walking = wave * 10 ** ((-20 + 20 * t) / 20)

    def change(compression: str) -> float:
        front = FrontEnd("logmel", FeatureSettings(compression=compression))
        clean, moved = front(wave), front(walking)
        return ((clean - moved).pow(2).mean() / clean.pow(2).mean()).item()

    assert change("pcen") < change("log") / 5
    assert FrontEnd("logmel", FeatureSettings(compression="pcen"))(wave).shape == (4, 1, 40, 101)
    with pytest.raises(ValueError, match="features.compression"):
        FeatureSettings.from_config({"compression": "cubic_root"})
