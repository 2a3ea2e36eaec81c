"""One router per resource: ``models`` (train, list, deploy, fetch) and ``scoring``."""
