-- history: records one point of a business's last-hour history (GET /stats/history) when a new
-- interval has begun by Redis's clock; called by every worker about once a second, so each point
-- is written once whichever worker comes first. A point is "<t> <waiting> <ready> <enqueued_total>
-- <admitted_total>" (t: the interval's start in ms); readers take per-interval counts as the
-- difference of consecutive totals. The list keeps the newest max points and expires with the
-- business's other keys once nobody writes it.
-- Its call is written by history_cmd (src/store_history.c), in this order:
-- KEYS: history, wait, ready, stats, clock. ARGV: interval ms, max points, test clock (0/1).
-- Returns 1 when it wrote a point, 0 when this interval has one already.
local now = gk_now_ms(ARGV[3] == '1' and KEYS[5] or nil)
local interval, max = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = now - now % interval
local last = redis.call('LINDEX', KEYS[1], -1)
if last and tonumber(string.match(last, '^(%d+)')) >= t then return 0 end
local s = redis.call('HMGET', KEYS[4], 'enqueued_total', 'admitted_total')
redis.call('RPUSH', KEYS[1], string.format('%d %d %d %d %d', t, redis.call('ZCARD', KEYS[2]),
           redis.call('ZCOUNT', KEYS[3], '(' .. now, '+inf'), tonumber(s[1]) or 0, tonumber(s[2]) or 0))
redis.call('LTRIM', KEYS[1], -max, -1)
redis.call('PEXPIRE', KEYS[1], 2 * max * interval)
return 1
