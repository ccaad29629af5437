"""casetransfer: when things happen (Prefect flows and the forms their waiting steps ask for)."""
