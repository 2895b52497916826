-- clock: Redis's time for one business, as every queue script sees it (gk_now_ms), for the admin
-- endpoints that report an event's state. Written by gk_store_now (src/store_sched.c).
-- KEYS: clock. ARGV: test clock.
-- Returns ms since the epoch.
return gk_now_ms(ARGV[1] == '1' and KEYS[1] or nil)
