-- Count one failed attempt on a user name and decide, atomically, whether it locks.
-- KEYS[1]  the name's failure hash: run = failures since the last lock, total = failures in a row
-- KEYS[2]  the attempt's answer: a redelivered attempt gets its first answer, and counts once
-- ARGV[1]  threshold: failures in a run that lock
-- ARGV[2]  hard_after: failures in a row that lock whatever the run
-- ARGV[3]  the total Postgres remembers: a floor, so a flushed Redis forgets no run
-- ARGV[4]  seconds to remember failures (TTL of the hash, renewed by every failure)
-- ARGV[5]  seconds to remember the attempt's answer
-- Returns {run, total, lock}; lock is 1 when this failure locks, and the run starts again.
-- The answer is memoised as JSON (cjson), as every signgate script memoises its answers.
local seen = redis.call('GET', KEYS[2])
if seen then
  return cjson.decode(seen)
end
local run = tonumber(redis.call('HGET', KEYS[1], 'run') or '0') + 1
local total = math.max(tonumber(redis.call('HGET', KEYS[1], 'total') or '0'), tonumber(ARGV[3])) + 1
local lock = 0
if run >= tonumber(ARGV[1]) or total >= tonumber(ARGV[2]) then
  lock = 1
  run = 0
end
local reply = {run, total, lock}
redis.call('HSET', KEYS[1], 'run', run, 'total', total)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
redis.call('SET', KEYS[2], cjson.encode(reply), 'EX', tonumber(ARGV[5]))
return reply
