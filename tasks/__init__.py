"""casetransfer: what is done (domain rules, calendar, locator, store, tracker, email)."""
