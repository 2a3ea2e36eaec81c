"""What the four services share: typed settings, async SQLAlchemy, a cache, tokens, the app factory."""
