"""Fault tools: the kill-storm soak (``python -m shmrt.tools.faults``)."""
