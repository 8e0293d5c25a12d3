"""One router per resource; `serving.app` gathers them."""
