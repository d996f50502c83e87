"""Fine-tuning the winners' way (training/optim.py), in-process through ``train_fold`` on the tones task
(tests/tones.py): the backbone frozen for the first epochs, a learning rate of its own, gradient
accumulation. What the DAG does with a pretrained backbone: test_timm.py."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from tones import CLASSES, job_paths, tones
from wavefold.training import classifier, loop, optim
from wavefold.settings.training import TrainSettings, training_problems

CPU = torch.device("cpu")
SEED = 1
EASY = TrainSettings(architecture="lenet", epochs=2, batch_size=8, silence_share=0.0, offline_share=0.0)
TIMM = replace(EASY, architecture="timm", params={"name": "test_efficientnet"})


@pytest.fixture(scope="module")
def task():
    torch.set_num_threads(2)
    return tones(per_class=16)


def checkpoints_of(task, folder, settings) -> tuple[dict, list[dict]]:
    """The job's initial weights (its seed, as train_fold builds them) and its checkpoint after each epoch."""
    torch.manual_seed(SEED)
    initial = {k: v.clone() for k, v in classifier.Classifier(settings, len(CLASSES)).state_dict().items()}
    paths = job_paths(folder)
    states = []

    def read_checkpoint(row):
        states.append(torch.load(paths.checkpoint, weights_only=False))

    loop.train_fold(task.fold(0), settings, SEED, paths, CPU, 0, identity=str(settings), on_epoch=read_checkpoint)
    return initial, states


def head_names(settings) -> set[str]:
    model = classifier.Classifier(settings, len(CLASSES))
    head = {id(t) for t in [*model.head().parameters(), *model.head().buffers()]}
    return {name for name, t in model.state_dict(keep_vars=True).items() if id(t) in head}


def changed(before: dict, after: dict, names) -> set[str]:
    return {n for n in names if before[n].is_floating_point() and not torch.equal(before[n], after[n])}


def test_frozen_epochs_leave_the_backbone_unchanged_and_train_the_head(task, tmp_path):
    """freeze_epochs 1 of 2, on a timm backbone (BatchNorm everywhere): after epoch 1 every backbone
    tensor, weights and BatchNorm statistics, is the initial one and the head has moved; after epoch 2
    the backbone has moved too. A freeze that forgot the statistics, or never thawed, fails."""
    initial, states = checkpoints_of(task, tmp_path, replace(TIMM, freeze_epochs=1))
    head = head_names(TIMM)
    backbone = set(initial) - head
    assert head and any("running_mean" in n for n in backbone)
    first, second = states[0]["model"], states[1]["model"]
    assert changed(initial, first, backbone) == set()
    assert changed(initial, first, head) == {n for n in head if initial[n].is_floating_point()}
    assert len(changed(first, second, backbone)) > len(backbone) // 2


def test_the_backbone_learns_at_its_ratio_of_the_learning_rate(task, tmp_path):
    """backbone_lr_ratio 0.01: the schedule keeps the backbone's rate at 0.01 x the head's at every step,
    and after an epoch its weights have moved about a hundredth as far as with ratio 1 (AdamW's steps
    are the size of the rate), while the head's move alike."""
    moves = {}
    for ratio in (1.0, 0.01):
        settings = replace(EASY, epochs=1, backbone_lr_ratio=ratio)
        initial, states = checkpoints_of(task, tmp_path / str(ratio), settings)
        rates = states[0]["scheduler"]["_last_lr"]
        if ratio != 1:
            assert rates[1] == pytest.approx(ratio * rates[0])
        head = head_names(settings)
        after = states[0]["model"]
        moves[ratio] = [
            sum((after[n] - initial[n]).abs().sum().item() for n in part if initial[n].is_floating_point()
                and "running" not in n)  # fmt: skip
            for part in (set(initial) - head, head)
        ]
    (backbone_1, head_1), (backbone_small, head_small) = moves[1.0], moves[0.01]
    assert backbone_small < 0.03 * backbone_1, moves
    assert 0.3 * head_1 < head_small < 3 * head_1, moves


def test_k_accumulated_batches_step_as_one_batch_k_times_larger():
    """Four batches of 8 accumulated into one SGD step, then four more: the weights of one batch of 32 a
    step, to rounding; and the last, shorter group of an epoch is a mean too (3 batches, 2 + 1). SGD, as
    its step scales with the gradient (AdamW's hardly does: a sum instead of a mean would pass)."""
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 5, generator=generator), torch.randint(0, 3, (64,), generator=generator)

    def trained(batch_size: int, accumulate: int, rows: int = 64) -> nn.Module:
        torch.manual_seed(0)
        model = nn.Linear(5, 3)
        sgd = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        constant = torch.optim.lr_scheduler.LambdaLR(sgd, lambda step: 1.0)
        stepper = optim.Stepper(sgd, constant, torch.amp.GradScaler(enabled=False), accumulate)
        batches = -(-rows // batch_size)
        stepper.start_epoch(batches)
        for i in range(batches):
            part = slice(i * batch_size, min(rows, (i + 1) * batch_size))
            stepper.backward(nn.functional.cross_entropy(model(x[part]), y[part]), i)
        assert constant.last_epoch == optim.steps_per_epoch(batches, accumulate)
        return model

    one, accumulated = trained(32, 1), trained(8, 4)
    torch.testing.assert_close(accumulated.weight, one.weight, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(trained(8, 1).weight, one.weight, atol=1e-3)  # eight steps are not two
    short_one, short_accumulated = trained(16, 1, rows=48), trained(8, 2, rows=48)
    torch.testing.assert_close(short_accumulated.weight, short_one.weight, atol=1e-6, rtol=1e-5)


def test_accumulation_in_the_job_takes_one_step_per_k_batches_and_still_learns(task, tmp_path):
    """accumulate 3 in train_fold: the scheduler steps ceil(batches / 3) times an epoch."""
    settings = replace(EASY, epochs=1, accumulate=3)
    _, states = checkpoints_of(task, tmp_path, settings)
    batches = -(-len(task.folds.query("fold != 0")) // settings.batch_size)
    assert states[0]["scheduler"]["last_epoch"] == -(-batches // 3) < batches


def test_a_freeze_as_long_as_the_training_is_refused_with_the_fix():
    problems = training_problems({"architecture": "timm", "epochs": 4, "freeze_epochs": 4}, "training.models.x")
    assert problems == ["training.models.x.freeze_epochs: 4 freezes the backbone for all 4 epochs, so it "
                        "would never learn: set it below epochs"]  # fmt: skip
    assert training_problems({"architecture": "timm", "epochs": 4, "freeze_epochs": 3}, "training.models.x") == []


class Killed(Exception):
    pass


def test_a_fine_tuned_timm_job_killed_after_its_frozen_epoch_resumes_to_the_same_weights(task, tmp_path):
    """Everything at once on a timm backbone: a frozen first epoch, its own rate, accumulation, EMA and
    mixup. Killed once its first epoch's checkpoint is written and started again, the job resumes there
    (the frozen epoch is not trained again, the thaw comes on time) and ends with the uninterrupted
    job's weights, to the bit; its curve has each epoch once."""
    settings = replace(TIMM, epochs=3, freeze_epochs=1, backbone_lr_ratio=0.3, accumulate=2, ema_decay=0.9,
                       augment={"mixup_alpha": 0.4})  # fmt: skip
    whole = job_paths(tmp_path / "whole")
    loop.train_fold(task.fold(0), settings, SEED, whole, CPU, 0, identity="job")

    def kill_after_first(row):
        if row["epoch"] == 1:
            raise Killed

    paths = job_paths(tmp_path / "killed")
    with pytest.raises(Killed):
        loop.train_fold(task.fold(0), settings, SEED, paths, CPU, 0, identity="job", on_epoch=kill_after_first)
    assert paths.checkpoint.exists() and not paths.model.exists()
    epochs = []
    loop.train_fold(task.fold(0), settings, SEED, paths, CPU, 0, identity="job", on_epoch=lambda r: epochs.append(r["epoch"]))
    assert epochs == [1, 2, 3]  # the resumed checkpoint's row first, then the two epochs left
    resumed, uninterrupted = (classifier.load(p.model, CPU)[0].state_dict() for p in (paths, whole))
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in uninterrupted)
