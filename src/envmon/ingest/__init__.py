"""Ingestion: HTTP pollers, the HJ 212 receiver and file imports, all feeding one validator."""
