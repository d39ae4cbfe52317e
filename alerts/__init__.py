"""Prometheus recording and alerting rules generated from thresholds.yml."""
