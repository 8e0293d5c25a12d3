"""The prediction routes' hot path as small ASGI pieces, one concern each.

`PredictionRoutes` (router) matches the path and hands a matched request to a chain, outermost
first: `RequestMetrics` (count and time), `ErrorRendering` (an error becomes its JSON answer),
`PostOnly` (405), `KeyAuth` (401), `BodyLimit` (413), `Endpoint` (the route's handler and its
200). Each is a plain ASGI callable, tested alone in tests/unit/test_serving_middleware.py.
"""
