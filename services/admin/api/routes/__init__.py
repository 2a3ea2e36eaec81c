"""One router per resource: auth, reviews, stats."""
