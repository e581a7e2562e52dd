"""Standard library only; shared by the OBS side and the worker: shared memory and control messages."""
