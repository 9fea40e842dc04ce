"""The phase clock: the event log, phases derived from it, following and charting them."""
