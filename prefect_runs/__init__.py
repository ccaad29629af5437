"""casetransfer's adapter to Prefect: starting, suspending, resuming, waking, stopping and deleting
flow runs (engine.py), the REST API over plain HTTP for the stacks (api.py), and everything it
relies on in Prefect beyond the public API, each named once (internals.py). Below flows/ and
ops/, which both use it; it imports neither."""
