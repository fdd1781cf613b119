-- Record one method a recipient passed and answer every method passed within the memory window.
--
-- KEYS[1] the recipient's passed methods (set)
-- ARGV[1] the method   ARGV[2] how long passed methods are remembered, ms (from the last one)
--
-- Returns the set's members. One script, so the answer includes this method however other
-- commands interleave (on Redis Cluster a transaction is no cheaper and no safer than a script).
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('SMEMBERS', KEYS[1])
