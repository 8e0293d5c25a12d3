"""Stream serving: predictions from a Kinesis stream to a results stream (`mlops stream`).

`kinesis` (client, shards, PutRecords), `records` (a batch → rows, outputs, dead letters, log
entries), `shards` (positions and resharding), `checkpoints` (MongoDB `stream_checkpoints`),
`consumer` (the loop) and `service` (everything put together, signals, /metrics). The model
holder, validator, journal and shipper are the API's own (`serving.holder`, `serving.logger`).
"""
