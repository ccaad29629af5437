"""casetransfer's adapter to Prefect: starting, suspending, resuming, waking, stopping and deleting
flow runs (engine.py). Below flows/ and ops/, which both use it; it imports neither."""
