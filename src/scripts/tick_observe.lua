-- tick_observe: adds one admission tick's duration, as the worker that ran it measured it, to the
-- histogram all workers share (gatekeeper_worker_tick_duration_seconds in /metrics).
-- Its call is written by tick_observe_cmd (src/store.c), in this order:
-- KEYS: gk:metrics:worker. ARGV: the bucket's field (its bound in microseconds, or 'inf'),
-- the duration in microseconds. Fields hold per-bucket counts; /metrics makes them cumulative.
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('HINCRBY', KEYS[1], 'sum_us', ARGV[2])
return 1
