"""The label space of the TensorFlow Speech Recognition Challenge and the dataset's naming rules."""

from __future__ import annotations

import hashlib
import re

#: The ten command words that are scored as themselves.
COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")

#: The twenty other words of the training set; all of them are scored as ``unknown``.
AUXILIARY_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
)  # fmt: skip

#: The 30 word folders of ``train/audio``.
WORDS = COMMANDS + AUXILIARY_WORDS

#: The 12 labels of the submission, in the column order every probability table uses.
LABELS = COMMANDS + ("silence", "unknown")

#: The folder of background noise recordings inside ``train/audio``.
NOISE_FOLDER = "_background_noise_"

#: The six noise recordings the real competition ships.
NOISE_FILES = (
    "doing_the_dishes.wav",
    "dude_miaowing.wav",
    "exercise_bike.wav",
    "pink_noise.wav",
    "running_tap.wav",
    "white_noise.wav",
)

TRAIN_CLIP_NAME = re.compile(r"^(?P<speaker>[0-9a-f]{8})_nohash_(?P<repeat>\d+)\.wav$")
TEST_CLIP_NAME = re.compile(r"^clip_[0-9a-f]{9}\.wav$")

# From the dataset's README: a clip's list membership is a hash of its speaker, so that one speaker's
# clips never straddle the train/validation/test lists.
_MAX_CLIPS_PER_CLASS = 2**27 - 1


def label_of(word: str) -> str:
    """The submission label of a training word (``marvin`` -> ``unknown``)."""
    return word if word in COMMANDS else "unknown"


def speaker_of(clip_name: str) -> str:
    """The speaker id of a clip name: the part before ``_nohash_``."""
    return re.sub(r"_nohash_.*$", "", clip_name)


def official_split(clip_name: str, validation_percent: float = 10.0, testing_percent: float = 10.0) -> str:
    """``training``, ``validation`` or ``testing``, exactly as the dataset's ``which_set`` assigns lists."""
    speaker = speaker_of(clip_name)
    digest = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    percent = (digest % (_MAX_CLIPS_PER_CLASS + 1)) * (100.0 / _MAX_CLIPS_PER_CLASS)
    if percent < validation_percent:
        return "validation"
    if percent < validation_percent + testing_percent:
        return "testing"
    return "training"
