-- The memo of every count-and-memo script: libs.runtime.redis_scripts puts this function before
-- each script that calls it. memoised(key, ttl_ms, answer): without a key, answer(); with one,
-- the first answer to this attempt (its command's id is in the key), kept ttl_ms as JSON (cjson):
-- the same attempt made again (its command delivered again after a crash, before its outcome was
-- committed) gets that answer and runs nothing, so it is counted once.
local function memoised(key, ttl_ms, answer)
  if not key then
    return answer()
  end
  local seen = redis.call('GET', key)
  if seen then
    return cjson.decode(seen)
  end
  local reply = answer()
  redis.call('SET', key, cjson.encode(reply), 'PX', ttl_ms)
  return reply
end
