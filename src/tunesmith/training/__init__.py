"""Training stage: tensorized data and batches (data.py), the loop with checkpoints, resume and DDP
(loop.py), the ``tunesmith train`` command (command.py)."""
