-- Verify and consume a submitted code for one recipient, counting a wrong one up to a ceiling:
-- an atomic check-count-and-memo primitive. What a count means (a lock, a retry count shared with
-- other methods) is the caller's; the caller passes the ceiling it works out.
--
-- KEYS[1] recipient's challenge (hash)   KEYS[2] recipient's failure count (string)
-- KEYS[3] (optional) the memo of this attempt's reply, by the id of the command that made it
-- ARGV[1] digest of the submitted code   ARGV[2] the ceiling: failures the count may hold
-- ARGV[3] now ms                         ARGV[4] longest validity ms (10 minutes)
-- ARGV[5] how long failures are remembered, ms
-- ARGV[6] how long the memo is kept, ms (with KEYS[3])
--
-- Returns {outcome, failures after this call, challenge id or ''} where outcome is
--   'spent'       the count held its ceiling already: nothing checked, nothing counted;
--   'no_pending'  no code is pending (never issued, used, withdrawn, or Redis lost it);
--   'expired'     the pending code is too old: it is withdrawn, the attempt is not counted;
--   'ok'          the code matched: it is consumed and the failure count reset;
--   'wrong'       the code did not match: one failure counted. The failure that brings the count
--                 to its ceiling withdraws the pending code, so only a new one (after the
--                 sender's reset) can succeed.
-- Failures survive a new code (NIST SP 800-63B: the limit is per authenticator, not per code).
-- With KEYS[3], the same attempt made again (its command delivered again after a crash, before
-- its outcome was committed) gets the reply it got the first time and changes nothing: a wrong
-- code is counted once, a right one is not refused as already used.
local function reply()
  local ceiling = tonumber(ARGV[2])
  local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
  if failures >= ceiling then
    return {'spent', failures, ''}
  end

  local challenge = redis.call('HMGET', KEYS[1], 'digest', 'issued_at', 'expires_at', 'challenge_id')
  local digest = challenge[1]
  if not digest then
    return {'no_pending', failures, ''}
  end

  local now = tonumber(ARGV[3])
  if now >= tonumber(challenge[3]) or now - tonumber(challenge[2]) >= tonumber(ARGV[4]) then
    redis.call('DEL', KEYS[1])
    return {'expired', failures, challenge[4]}
  end

  -- Comparing here keeps check-and-consume atomic: fetching the digest to compare in the
  -- client would let two submissions of one code both succeed. Lua's `==` on strings is not
  -- constant-time, but what it compares are HMAC-SHA256 digests keyed with a secret pepper:
  -- learning how many leading characters of a guess's digest match the stored one tells an
  -- attacker nothing about which code to try next, as they cannot compute digests themselves.
  if digest == ARGV[1] then
    redis.call('DEL', KEYS[1], KEYS[2])
    return {'ok', 0, challenge[4]}
  end

  failures = redis.call('INCR', KEYS[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  if failures >= ceiling then
    redis.call('DEL', KEYS[1])
  end
  return {'wrong', failures, challenge[4]}
end

return memoised(KEYS[3], ARGV[6], reply)
