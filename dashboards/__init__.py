"""Grafana dashboards generated with grafanalib from thresholds.yml."""
