-- Count one wrong password or access code for a recipient, up to a ceiling: an atomic
-- count-and-memo primitive. What a count means (the retry count shared with wrong codes, the
-- lock) is `domain.RecipientAttempts`'s; the caller passes the ceiling it works out.
--
-- KEYS[1] the recipient's failure count (string)
-- KEYS[2] (optional) the memo of this attempt's reply, by the id of the command that made it
-- ARGV[1] the ceiling: failures the count may hold   ARGV[2] how long failures are remembered, ms
-- ARGV[3] how long the memo is kept, ms (with KEYS[2])
--
-- Returns {failures, counted}: counted is 0 when the count held its ceiling already (nothing was
-- counted). With KEYS[2], the same attempt made again (its command delivered again after a crash,
-- before its outcome was committed) gets the reply it got the first time and counts nothing.
local function reply()
  local failures = tonumber(redis.call('GET', KEYS[1]) or '0')
  if failures >= tonumber(ARGV[1]) then
    return {failures, 0}
  end
  failures = redis.call('INCR', KEYS[1])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return {failures, 1}
end

return memoised(KEYS[2], ARGV[3], reply)
