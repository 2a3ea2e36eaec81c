"""Realistic shop traffic with labeled fraud (``locustfile``) and its runner (``runner``)."""
