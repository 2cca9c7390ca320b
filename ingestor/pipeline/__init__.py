"""Stages between source and sink: decode + validate + shape (decode.py), batch (batch.py), gzip (compress.py)."""
