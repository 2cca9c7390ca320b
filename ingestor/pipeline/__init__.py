"""Stages between source and sink: decode + validate + shape (decode.py, on the typed row codecs of codec.py),
batch (batch.py), gzip (compress.py).
"""
