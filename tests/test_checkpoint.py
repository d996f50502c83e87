"""A checkpoint is resumed only by an interrupted run of the very same job."""

import torch

from wavefold.training.checkpoint import Checkpoint, file_identity, job_identity


def test_a_checkpoint_of_another_identity_is_removed_not_resumed(tmp_path):
    path = tmp_path / "checkpoint" / "last.pt"
    Checkpoint(path, "job-a").save({"epoch": 3, "model": {"w": torch.ones(2)}})
    assert Checkpoint(path, "job-a").load(torch.device("cpu"))["epoch"] == 3
    assert Checkpoint(path, "job-b").load(torch.device("cpu")) is None
    assert not path.exists() and not path.parent.exists()


def test_the_identity_covers_code_and_data_content(tmp_path):
    code, table = tmp_path / "lenet.py", tmp_path / "folds.csv"
    code.write_text("dropout = 0.3\n")
    table.write_text("id,fold\na,0\n")
    before = job_identity("settings", "rows", "seed", files=[code, table])
    code.write_text("dropout = 0.5\n")  # an edited architecture
    assert job_identity("settings", "rows", "seed", files=[code, table]) != before
    code.write_text("dropout = 0.3\n")
    assert job_identity("settings", "rows", "seed", files=[code, table]) == before  # content, not the file's time
    assert file_identity(code) != file_identity(table)
