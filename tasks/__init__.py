"""casetransfer: what is done, in plain Python (no Prefect): domain/, store/, places/, reports/, notify/, demo/, and the calendar and settings they share."""
