"""HTTP routes of the admin service, one module per resource, and their dependencies."""
