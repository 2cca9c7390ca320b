"""Where rows go: the Logs Ingestion API (logs_ingestion.py; delivery.py, which follows the retry policy of retry.py)
and the dead letter (dead_letter.py).
"""
