"""Configuration and logging shared by every entry point and adapter: the settings read from the
environment (`settings.py`) and the structured, allow-listed log lines (`logging.py`)."""
