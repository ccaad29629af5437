"""casetransfer's adapter to Prefect: starting, suspending, resuming, waking, stopping and deleting
flow runs (engine.py), and the API over plain HTTP where Prefect's client has no call for it
(api.py). Below flows/ and ops/, which both use it; it imports neither."""
