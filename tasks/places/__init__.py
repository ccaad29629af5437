"""Where things are: the probation estate, the national PDU locator, and where a transfer goes."""
