-- stats: counters and sizes of one business's queue. Read-only.
-- Its call is written by stats_cmd (src/store.c), in this order:
-- KEYS: wait, ready, stats, events, clock. ARGV: test clock (0/1).
-- Returns {waiting, ready, admitted_total, enqueued_total, last_admission_ms, admit_rate,
--          events_backlog, events_dropped, expired_total, evicted_total, ticks_total,
--          finished_total, rate_limited_total, left_total, fair, waits}; admit_rate is a decimal string ('' if
--          none); fair is the tickets of the last admissions in admission order (list
--          gk:{<business>}:fair, beside wait), waits the wait histogram: wait_b1..wait_b10,
--          wait_inf, wait_count, wait_sum_ms (see gk_fairness in tick.lua).
local now = gk_now_ms(ARGV[1] == '1' and KEYS[5] or nil)
local s = redis.call('HMGET', KEYS[3], 'admitted_total', 'enqueued_total', 'last_admission_at', 'admit_rate',
                     'events_dropped', 'expired_total', 'evicted_total', 'ticks_total', 'finished_total',
                     'rate_limited_total', 'left_total')
local waits = redis.call('HMGET', KEYS[3], 'wait_b1', 'wait_b2', 'wait_b3', 'wait_b4', 'wait_b5', 'wait_b6',
                         'wait_b7', 'wait_b8', 'wait_b9', 'wait_b10', 'wait_inf', 'wait_count', 'wait_sum_ms')
for i = 1, #waits do waits[i] = tonumber(waits[i]) or 0 end
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCOUNT', KEYS[2], '(' .. now, '+inf'),
        tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0, s[4] or '',
        redis.call('XLEN', KEYS[4]), tonumber(s[5]) or 0, tonumber(s[6]) or 0, tonumber(s[7]) or 0,
        tonumber(s[8]) or 0, tonumber(s[9]) or 0, tonumber(s[10]) or 0, tonumber(s[11]) or 0,
        redis.call('LRANGE', string.sub(KEYS[1], 1, -5) .. 'fair', 0, -1), waits}
