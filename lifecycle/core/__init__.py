"""Settings, errors, times, event and metric names, and the bounded wait: what every part uses."""
