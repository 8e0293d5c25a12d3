"""Monitoring: the exporter, Prometheus/Alertmanager/Grafana configuration, staleness guard."""
