"""Demo and benchmark data: synthetic NSIs, example handovers, example legacy trackers."""
