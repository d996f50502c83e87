"""What the DAG and the code competition's notebook compute alike, written once: the blend applied to
test probabilities (:mod:`.blend`), the submission's rows (:mod:`.submission`), a test clip
decoded as the audio cache holds it (:mod:`.audio`), and the power spectrum a spectral model's
exported graph starts from (:mod:`.spectrum`).

``rule package`` copies this folder into the Kaggle Dataset beside ``recipe.json``, and the notebook
(:mod:`wavefold.kernel.notebook`) imports it from there; ``wavefold.blend``, ``wavefold.audio`` and
the competitions import it from here. So it stands alone: the standard library, numpy, and (for
decoding) soundfile and soxr, and SciPy's FFT where there is one, which Kaggle's image has — nothing of wavefold. One module per concern,
so that a rule re-runs only for the one it runs (its code is what it imports: wavefold.dependencies).
"""
