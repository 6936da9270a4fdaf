"""shmrt: a multiprocess shared-memory runtime for Python."""
