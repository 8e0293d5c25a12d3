"""Reports from the prediction log: Evidently drift and live-quality reports, the index page with
trends over time, and the nginx config that serves them."""
