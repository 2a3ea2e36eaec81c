"""ShopFDS command line: ``shopfds demo``, ``shopfds trace TRACE_ID``."""
