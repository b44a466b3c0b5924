"""The recommendation service: FastAPI routes over a checkpoint and an event store."""
