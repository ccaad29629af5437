"""Helpers the tests share: the command line (in this process, or as a real subprocess), waits
that poll for a state, and the Prefect API of the stack under test. No test module imports another."""
