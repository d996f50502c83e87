"""Pretrained weights for a model's backbone (``params.pretrained``), resolved and checked when the
workflow is parsed: a wrong file fails in seconds, not on a compute node hours later.

What ``pretrained`` may be (with ``params.name``, the timm backbone they are weights of):
- ``none`` (or absent): random weights;
- ``timm``: timm's own weights for ``name``, which the localrule ``fetch_weights`` saves into
  resources/weights/timm/<name>.safetensors where the workflow runs (the machine with internet);
  the training jobs read that file, so compute nodes need none;
- a weights file (.pth, .pt, .bin, .safetensors): a timm model's state dict;
- a finished wavefold run's model (``results/train/round<r>/<model>/fold<k>/model.pt``), of any
  competition: transfer, its backbone's weights taken and the head made anew.

A file is checked once, by loading it into the backbone in a Python of its own (the parse imports
neither torch nor timm), and the verdict kept in resources/weights/checked/, named by the file's
content hash, the backbone, timm's version and the loading code's. The content hash is also a param of the model's
training jobs, so a changed file re-trains them. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path

SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
NONE = (None, "", "none")  # what asks for random weights
FETCHED = Path("resources/weights/timm")
CHECKED = Path("resources/weights/checked")
SCRIPTS = Path(__file__).resolve().parents[1]
#: What the check's Python exits with when it cannot import torch or timm (a parse without them).
NO_TORCH = 3


@dataclass(frozen=True)
class Weights:
    setting: str  # where it is set, for messages: training.models.<model>.params.pretrained
    backbone: str  # timm's name of the backbone
    path: str  # the file the training job loads
    fetched: bool  # made by rule fetch_weights (pretrained: timm)


def of_model(settings: dict, setting: str) -> Weights | None:
    """The weights a model's settings ask for (None: random weights); ``setting`` names where."""
    params = settings.get("params") or {}
    pretrained = params.get("pretrained")
    if pretrained in NONE:
        return None
    backbone = str(params.get("name", ""))
    if pretrained == "timm":
        return Weights(setting, backbone, str(fetched_path(backbone)), fetched=True)
    return Weights(setting, backbone, str(pretrained), fetched=False)


def fetched_path(backbone: str) -> Path:
    return FETCHED / f"{backbone}.safetensors"


def for_backbone(pretrained: str | None, backbone: str, setting: str) -> str | None:
    """What a tuning trial of ``backbone`` loads when tune chooses among backbones (tune.space's
    params.name): timm's weights, fetched for each choice, or random ones. A file holds the weights of
    one backbone and cannot follow the choice."""
    if pretrained in (*NONE, "timm"):
        return pretrained
    if Path(pretrained).parent == FETCHED:
        return str(fetched_path(backbone))
    raise ValueError(f"{setting}: {pretrained} holds the weights of one backbone, so tune cannot choose "
                     f"among backbones with it: set pretrained to timm (each choice's weights fetched) or none")  # fmt: skip


def content_hash(path: str | Path) -> str:
    """The file's sha256, read once per parse (the fit check's memo and the jobs' param both use it)."""
    info = Path(path).stat()
    return _sha256(str(path), info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def problems(weights: Weights) -> list[str]:
    """What is wrong with the weights, each with the fix; [] when they load into the backbone."""
    if not weights.backbone:
        return [f"{weights.setting}: weights need the backbone they belong to: set params.name (a timm model name)"]
    if weights.fetched:
        return []  # rule fetch_weights makes them with timm itself
    path = Path(weights.path)
    if path.suffix not in SUFFIXES:
        return [f"{weights.setting}: {weights.path!r} is neither none, timm nor a weights file "
                f"({', '.join(SUFFIXES)}): name such a file, or set timm to fetch timm's weights"]  # fmt: skip
    if not path.is_file():
        return [f"{weights.setting}: {path} does not exist (a relative path is read from the working "
                f"directory, {Path.cwd()}): put the file there, or set timm to fetch timm's weights"]  # fmt: skip
    verdict = fit(path, weights.backbone)
    if verdict:
        return [f"{weights.setting}: {path} does not fit backbone {weights.backbone}: {verdict}. Name weights "
                f"of {weights.backbone} (a timm state dict, or a wavefold model of it), or change params.name"]  # fmt: skip
    return []


def fit(path: Path, backbone: str) -> str:
    """Why the file does not load into the backbone ('' when it does), from the check's memo or, the
    first time, from a Python of its own that loads it (:func:`..architectures.timm.load_check`)."""
    try:
        timm_version = metadata.version("timm")
    except metadata.PackageNotFoundError:
        timm_version = "none"
    checker = hashlib.sha256((SCRIPTS / "wavefold/architectures/timm.py").read_bytes()).hexdigest()[:8]
    memo = CHECKED / f"{content_hash(path)[:20]}-{backbone}-timm{timm_version}-{checker}.txt"
    if memo.is_file():
        return memo.read_text()
    code = (f"import sys; sys.path.insert(0, {str(SCRIPTS)!r})\n"
            f"try:\n    import timm, torch\n    from wavefold.architectures.timm import load_check\n"
            f"except ImportError:\n    sys.exit({NO_TORCH})\n"
            f"print(load_check({str(path)!r}, {backbone!r}), end='')")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    if done.returncode == NO_TORCH:
        print(f"wavefold: {path} not checked against {backbone} (no torch or timm where the workflow is "
              f"parsed): its training jobs will say if it does not fit", file=sys.stderr)  # fmt: skip
        return ""
    if done.returncode != 0:  # not a verdict on the file: not kept, so the next parse tries again
        return f"the check itself failed: {done.stderr.strip()[-500:]}"
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(done.stdout)
    return done.stdout


def fetch(name: str, path: Path) -> dict:
    """timm's own weights for ``name`` (downloaded, or from the Hugging Face cache) saved as a
    .safetensors state dict, whole (three channels, classifier): what the timm architecture loads
    from a file (rule fetch_weights; here, not in architectures/timm.py, so that editing the
    architecture does not fetch the weights again). Returns where they came from (timm's pretrained
    config), for the log."""
    import safetensors.torch  # here: the parse imports this module, and must not import torch
    import timm

    model = timm.create_model(name, pretrained=True)
    state = {key: value.detach().clone().contiguous() for key, value in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(state, str(path), metadata={"timm_model": name, "timm_version": timm.__version__})
    config = model.pretrained_cfg
    return {key: config.get(key) for key in ("hf_hub_id", "tag", "license", "url") if config.get(key)}
