"""One router per resource: auth, reviews, stats, and the runbook pages."""
