"""The domain store: the source of truth for every NSI, action, decision and history entry."""
