"""The code competition's package: a Kaggle Dataset folder (the fold models as ONNX, the recipe, the
portable arithmetic, the wheels) and a notebook folder (the inference script and its metadata).

What goes in is what the final blend needs and nothing more: a member the blend gives no weight is
left out (its models would cost notebook time for nothing). The recipe is the blend's
(``results/final/recipe.json``) with the audio policy, the TTA shifts, the members' ONNX files and the
submission format added: data the notebook reads, so that one script serves every competition.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

from .. import rounds
from ..errors import ExplainedError
from . import notebook, portable
from .portable import audio, blend, spectrum, submission

#: What the Dataset's portable/ holds, imported here so that editing one re-runs rule package (a rule's
#: code is what its script imports: wavefold.dependencies); a module the notebook imports and this
#: leaves out fails the rehearsal.
PORTABLE_MODULES = (portable, audio, blend, spectrum, submission)

#: The notebook's code file in the kernel folder.
CODE_FILE = "inference.py"


class PackageError(ExplainedError, ValueError):
    """A final blend the notebook cannot run as it is; the message says what and the fix."""

    def __init__(self, what: str, fix: str):
        super().__init__(f"{what}. Fix: {fix}")


@dataclass(frozen=True)
class KernelSettings:
    """The ``kernel`` section of the config (config/schema.yaml documents each key)."""

    owner: str = "wavefold"
    dataset_slug: str = ""
    notebook_slug: str = ""
    threads: int = 4
    batch_clips: int = 32
    enable_gpu: bool = False
    wheels: tuple[str, ...] = ("onnxruntime==1.32.0",)
    wheels_from: str = "pypi"
    python: str = "3.11"
    platform: str = "manylinux_2_28_x86_64"
    tolerance: float = 1e-3
    check_clips: int = 256

    @classmethod
    def from_config(cls, section: dict) -> "KernelSettings":
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if k == "wheels" else v) for k, v in section.items() if k in known and v is not None}
        return cls(**values)

    def dataset_id(self, competition: str) -> str:
        return f"{self.owner}/{self.dataset_slug or default_slug(competition, 'models')}"

    def notebook_id(self, competition: str) -> str:
        return f"{self.owner}/{self.notebook_slug or default_slug(competition, 'inference')}"


def default_slug(competition: str, what: str) -> str:
    """wavefold-<competition>-<what>, the competition's name shortened to fit Kaggle's 50 characters."""
    room = 50 - len("wavefold--") - len(what)
    return f"wavefold-{competition[:room].rstrip('-')}-{what}"


def needed_members(blend: dict) -> list[int]:
    """The members the blend's output depends on: the chosen one, those of non-zero weight, or all (stacking)."""
    combine = blend["combine"]
    if combine["kind"] == "member":
        return [combine["member"]]
    if combine["kind"] == "weights":
        return [i for i, w in enumerate(combine["weights"]) if w > 0]
    if combine["kind"] == "stacking":
        return list(range(len(blend["members"])))
    raise PackageError(
        f"the final blend is the candidate {combine.get('candidate')!r}, which the notebook cannot apply",
        "choose a candidate it can (blend.method: mean, logloss, accuracy, stacking or a model; or "
        "blend.candidates without it), or teach wavefold.blend.fit.recipe and kernel/portable/blend.apply_blend it",
    )


def pruned(blend: dict, keep: list[int]) -> dict:
    """The blend recipe restricted to the members ``keep`` (their weights and temperatures)."""
    out = {**blend, "members": [blend["members"][i] for i in keep], "combine": dict(blend["combine"])}
    if blend.get("temperatures") is not None:
        out["temperatures"] = [blend["temperatures"][i] for i in keep]
    if out["combine"]["kind"] == "member":
        out["combine"]["member"] = 0
    elif out["combine"]["kind"] == "weights":
        out["combine"]["weights"] = [blend["combine"]["weights"][i] for i in keep]
    return out


def member_models(blend: dict, models: list[str]) -> dict[str, tuple[int, str]]:
    """Each member the notebook runs -> (round, model) whose fold models it is; a teammate's tables
    (blend.external) have no models to run."""
    known = rounds.blend_members(models, blend["round"], across_rounds=True)
    keep = needed_members(blend)
    foreign = [blend["members"][i] for i in keep if blend["members"][i] not in known]
    if foreign:
        raise PackageError(
            f"the final blend gives weight to {foreign}, predictions from outside this workflow (blend.external): "
            "a notebook can only run the workflow's own models",
            "leave them out of the blend for a code competition (blend.external: {}), or retrain them here",
        )
    return {blend["members"][i]: known[blend["members"][i]] for i in keep}


def onnx_name(member: str, fold: int) -> str:
    return f"models/{member}_fold{fold}.onnx"


def notebook_recipe(blend: dict, competition, audio: dict, tta_samples: list[int], folds: list[int],
                    settings: KernelSettings, inputs: dict[str, dict]) -> dict:  # fmt: skip
    """Everything the notebook reads (``recipe.json``): the pruned blend and what makes its inputs.
    ``inputs``: each member's graphs' input (export.Probabilities.input: the waveform or a spectrum)."""
    keep = needed_members(blend)
    final = pruned(blend, keep)
    return {
        "competition": competition.slug,
        "labels": list(competition.labels),
        "test_folder": competition.test_folder,
        "audio_suffix": ".wav",
        "audio": audio,
        "tta_shifts": list(tta_samples),
        "batch_clips": settings.batch_clips,
        "members": [{"name": m, "folds": [onnx_name(m, k) for k in folds], "input": inputs[m]}
                    for m in final["members"]],  # fmt: skip
        "blend": final,
        "submission": {**competition.submission_format, "id_column": competition.id_column},
    }


def audio_of(policy) -> dict:
    """The audio policy (wavefold.audio.AudioPolicy) as the notebook's recipe holds it."""
    return {"sample_rate": policy.sample_rate, "clip_samples": policy.clip_samples, "short": policy.short,
            "long": policy.long, "hop_samples": policy.hop_samples, "other_rates": policy.other_rates,
            "multichannel": policy.multichannel}  # fmt: skip


def dataset_metadata(settings: KernelSettings, competition) -> dict:
    return {"title": f"wavefold {competition.slug}"[:50], "id": settings.dataset_id(competition.slug),
            "licenses": [{"name": "CC0-1.0"}]}  # fmt: skip


def kernel_metadata(settings: KernelSettings, competition) -> dict:
    """kernel-metadata.json. enable_internet written explicitly: the client takes a missing key as true,
    and a code competition refuses a notebook with internet."""
    return {
        "id": settings.notebook_id(competition.slug),
        "title": settings.notebook_id(competition.slug).split("/", 1)[1],
        "code_file": CODE_FILE,
        "language": "python",
        "kernel_type": "script",
        "is_private": True,
        "enable_gpu": settings.enable_gpu,
        "enable_internet": False,
        "dataset_sources": [settings.dataset_id(competition.slug)],
        "competition_sources": [competition.slug],
        "kernel_sources": [],
        "model_sources": [],
    }


def write_package(dataset: Path, kernel: Path, recipe: dict, models: Path, wheels: Path | None,
                  settings: KernelSettings, competition) -> None:  # fmt: skip
    """The Dataset folder and the notebook folder, from scratch."""
    for folder in (dataset, kernel):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    (dataset / "models").mkdir()
    for member in recipe["members"]:
        for path in member["folds"]:
            shutil.copyfile(models / Path(path).name, dataset / path)
    if wheels is not None:
        shutil.copytree(wheels, dataset / notebook.WHEELS, ignore=shutil.ignore_patterns(".snakemake*"))
    (dataset / notebook.RECIPE).write_text(json.dumps(recipe, indent=1))
    (dataset / notebook.PORTABLE).mkdir()
    for module in PORTABLE_MODULES:
        shutil.copyfile(module.__file__, dataset / notebook.PORTABLE / Path(module.__file__).name)
    (dataset / "dataset-metadata.json").write_text(json.dumps(dataset_metadata(settings, competition), indent=1))
    shutil.copyfile(notebook.__file__, kernel / CODE_FILE)
    (kernel / "kernel-metadata.json").write_text(json.dumps(kernel_metadata(settings, competition), indent=1))
