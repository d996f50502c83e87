"""Training one model on one fold, one module per job (what a job is told, its settings, lives below
every reader, in :mod:`wavefold.settings.training`: no torch, so the workflow checks them when parsed):

- ``data``       what one fold trains and validates on, and each epoch's shuffled plan of examples;
- ``batches``    gathering a batch from the memory-mapped caches, on a background thread;
- ``classifier`` features + architecture as one module, and the workflow's probability format;
- ``inference``  probabilities of cached clips, with test-time augmentation;
- ``optim``      optimizer and learning-rate schedule;
- ``checkpoint`` the job's identity, and resuming only an interrupted run of the same job;
- ``loop``       **the hot loop** (``train_fold``): epochs, augmentation on the device, epoch choice;
- ``outputs``    what a finished job writes: model, out-of-fold probabilities, curve, metrics.
"""
