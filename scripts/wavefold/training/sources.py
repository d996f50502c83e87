"""The one integer an epoch plan gives each example (its "source"), decoded in one place.

An epoch plan addresses its examples in blocks: the training clips ``[0, clips)``, then the offline
variants ``[clips, clips + variants)``, then the pseudo-labelled test clips from ``clips + variants``
on; :data:`SILENCE` (-1) is a silence example, a window of the noise cache. The same layout addresses
the caches' rows, with ``clips`` counted in cache rows (a clip cached as windows has several).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

SILENCE = -1


class Part(NamedTuple):
    mask: np.ndarray  # which examples are of this block
    index: np.ndarray  # their numbers within the block: a clip's row, a variant's, a test clip's

    def any(self) -> bool:
        return bool(self.mask.any())


class Parts(NamedTuple):
    clip: Part
    variant: Part
    test: Part
    silence: np.ndarray  # mask


@dataclass(frozen=True)
class Sources:
    clips: int
    variants: int

    def of_variants(self, index: np.ndarray) -> np.ndarray:
        return self.clips + np.asarray(index)

    def of_tests(self, index: np.ndarray) -> np.ndarray:
        return self.clips + self.variants + np.asarray(index)

    def parts(self, source: np.ndarray) -> Parts:
        n, v = self.clips, self.variants
        clip = (source >= 0) & (source < n)
        variant = (source >= n) & (source < n + v)
        test = source >= n + v
        return Parts(Part(clip, source[clip]), Part(variant, source[variant] - n), Part(test, source[test] - n - v),
                     source < 0)  # fmt: skip
