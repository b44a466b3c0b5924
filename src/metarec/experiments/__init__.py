"""Simulation experiments: adaptation, virtual tasks, preference shift, regularisation.

Each experiment trains on training users' tasks, selects on validation
users' tasks and reports on held-out test users' tasks, then writes
``results.json``, ``report.md``, plots and ``config.yaml`` into one folder.
"""
