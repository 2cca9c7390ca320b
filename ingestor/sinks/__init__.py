"""Where rows go: the Logs Ingestion API (logs_ingestion.py, delivery.py) and the dead letter (dead_letter.py)."""
