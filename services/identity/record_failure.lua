-- Count one failed attempt on a user name and decide, atomically, whether it locks.
-- KEYS[1]  the name's failure hash: run = failures since the last lock, total = failures in a row
-- KEYS[2]  the attempt's answer: a redelivered attempt gets its first answer, and counts once
-- ARGV[1]  threshold: failures in a run that lock
-- ARGV[2]  hard_after: failures in a row that lock whatever the run
-- ARGV[3]  the total Postgres remembers: a floor, so a flushed Redis forgets no run
-- ARGV[4]  seconds to remember failures (TTL of the hash, renewed by every failure)
-- ARGV[5]  seconds to remember the attempt's answer
-- Returns {run, total, lock}; lock is 1 when this failure locks, and the run starts again.
-- The answer is memoised (libs/runtime/memo.lua), as every count-and-memo script's is.
local function reply()
  local run = tonumber(redis.call('HGET', KEYS[1], 'run') or '0') + 1
  local total = math.max(tonumber(redis.call('HGET', KEYS[1], 'total') or '0'), tonumber(ARGV[3])) + 1
  local lock = 0
  if run >= tonumber(ARGV[1]) or total >= tonumber(ARGV[2]) then
    lock = 1
    run = 0
  end
  redis.call('HSET', KEYS[1], 'run', run, 'total', total)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
  return {run, total, lock}
end
return memoised(KEYS[2], tonumber(ARGV[5]) * 1000, reply)
