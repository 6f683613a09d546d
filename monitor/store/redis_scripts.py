"""Lua scripts that make the Redis store's multi-step operations atomic.

Redis runs a script without interleaving any other client's command, so several
daemon instances sharing one Redis can claim feeds and commit articles without
locks. Each script receives every key it touches in ``KEYS`` (names come from
``keys.py``) and every time as integer microseconds.

A script is not rolled back if a command in it fails half-way; ours only fail on a
key of the wrong type (someone else's data under our prefix), which the store
reports as ``StoreError``.
"""

from __future__ import annotations

# Shared by commit_article and outbox_put. Per item: KEYS queue, item;
# ARGV sink, alert_id, place (created_at in µs), nfields, field, value, ... An item
# already queued is left alone, so a put is idempotent per (alert_id, sink) and keeps
# its attempts and its place. Returns the index of the first ARGV after the items.
_PUT_ITEMS = """
local function put_items(sinks_key, key_at, arg_at, n_items)
  for _ = 1, n_items do
    local queue, item = KEYS[key_at], KEYS[key_at + 1]
    local sink, alert_id, place = ARGV[arg_at], ARGV[arg_at + 1], ARGV[arg_at + 2]
    local nfields = tonumber(ARGV[arg_at + 3])
    if redis.call('EXISTS', item) == 0 then
      redis.call('HSET', item, unpack(ARGV, arg_at + 4, arg_at + 3 + 2 * nfields))
      redis.call('ZADD', queue, place, alert_id)
      redis.call('SADD', sinks_key, sink)
    end
    key_at = key_at + 2
    arg_at = arg_at + 4 + 2 * nfields
  end
  return arg_at
end
"""

# KEYS: due zset, state hash. ARGV: now, lease_end, limit.
# Returns url, state JSON ('' when none), url, state, ... earliest due first.
CLAIM_DUE = """
local urls = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for _, url in ipairs(urls) do
  redis.call('ZADD', KEYS[1], ARGV[2], url)
  out[#out + 1] = url
  out[#out + 1] = redis.call('HGET', KEYS[2], url) or ''
end
return out
"""

# Shared by sync_feeds and register_missing. KEYS: due zset, state hash. ARGV: now,
# then url, default state JSON, ... A listed feed missing from the due set is added,
# due now, with the default state unless it has one; a feed in it is left alone.
# Returns how many were added.
_ADD_MISSING = """
local function add_missing()
  local added = 0
  for i = 2, #ARGV, 2 do
    if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then
      redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
      redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
      added = added + 1
    end
  end
  return added
end
"""

# KEYS: due zset. ARGV: url, the claim's lease end, due.
# Hands a feed back only while the claim that set that lease end still holds it.
RELEASE_CLAIM = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
  return 1
end
return 0
"""

# KEYS, ARGV: as _ADD_MISSING.
# Unlisted feeds leave the due set (their state stays); new or re-listed ones are due now.
SYNC_FEEDS = _ADD_MISSING + """
local listed = {}
for i = 2, #ARGV, 2 do listed[ARGV[i]] = true end
for _, url in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if not listed[url] then redis.call('ZREM', KEYS[1], url) end
end
add_missing()
return 0
"""

# KEYS, ARGV: as _ADD_MISSING. Only adds: feeds another instance lists stay due.
REGISTER_MISSING = _ADD_MISSING + """
return add_missing()
"""

# KEYS: stories zset, stories hash, members zset, members hash, outbox sinks set,
#       members seq zset, members counter, seen keys (nseen), then queue, item per
#       outbox item, then the batch guard key when guarded, then the lease key when
#       fenced.
# ARGV: nseen, ttl_ms (0: no expiry), story_id, story_score, story_json,
#       member_id ('' when none), member_score, member_json, n_items, items...,
#       n_stories, then story_id, story_score, story_json per extra story,
#       n_moved, then old member_id, new member_id, member_score, member_json per
#       moved member, guard TTL in ms ('' when not guarded), lease token ('' when not
#       fenced).
# Returns 0 (nothing written) when any seen key exists, -1 (nothing written) when the
# lease named by the token is no longer held by it, -2 (nothing written) when the
# guard key exists, else 1. A guarded entry that is refused sets the guard key, so
# the later entries of its batch (same guard) write nothing: a batch that stops at its
# first refusal, sent as one pipeline of separate scripts.
# A member gets the next sequence number (a re-added one moves to the end), so the
# members seq zset is the change feed ``members_after`` reads in commit order.
# A story split by the entry is written after the entry's own writes: the other
# story's record like the entry's story, and each moved member leaves under its old
# id (members zset, hash and seq zset) and is added under its new id like the entry's
# member, so the change feed gives it again, under the new id only. A moved member
# whose features are empty keeps its stored record but for its story id (the index
# does not keep members' texts); one no longer stored (expired) is not moved.
COMMIT_ARTICLE = _PUT_ITEMS + """
local fence = ARGV[#ARGV]
local last = #KEYS
if fence ~= '' then
  if redis.call('GET', KEYS[last]) ~= fence then return -1 end
  last = last - 1
end
local guard_ttl = ARGV[#ARGV - 1]
if guard_ttl ~= '' and redis.call('EXISTS', KEYS[last]) == 1 then return -2 end
local nseen = tonumber(ARGV[1])
for i = 8, 7 + nseen do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    if guard_ttl ~= '' then redis.call('SET', KEYS[last], '1', 'PX', guard_ttl) end
    return 0
  end
end
local ttl = tonumber(ARGV[2])
for i = 8, 7 + nseen do
  if ttl > 0 then
    redis.call('SET', KEYS[i], '1', 'PX', ttl)
  else
    redis.call('SET', KEYS[i], '1')
  end
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[5])
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[6])
  redis.call('HSET', KEYS[4], ARGV[6], ARGV[8])
  redis.call('ZADD', KEYS[6], redis.call('INCR', KEYS[7]), ARGV[6])
end
local at = put_items(KEYS[5], 8 + nseen, 10, tonumber(ARGV[9]))
for _ = 1, tonumber(ARGV[at]) do
  redis.call('ZADD', KEYS[1], ARGV[at + 2], ARGV[at + 1])
  redis.call('HSET', KEYS[2], ARGV[at + 1], ARGV[at + 3])
  at = at + 3
end
at = at + 1
for _ = 1, tonumber(ARGV[at]) do
  local old_id, new_id = ARGV[at + 1], ARGV[at + 2]
  local data, score = ARGV[at + 4], ARGV[at + 3]
  local member = cjson.decode(data)
  if member.features == '' then
    -- empty features: keep the stored ones; a member no longer stored is not moved
    local stored = redis.call('HGET', KEYS[4], old_id)
    if stored then
      local kept = cjson.decode(stored)
      kept.story_id = member.story_id
      data = cjson.encode(kept)
      score = redis.call('ZSCORE', KEYS[3], old_id) or score
    else
      data = nil
    end
  end
  if data then
    redis.call('ZREM', KEYS[3], old_id)
    redis.call('HDEL', KEYS[4], old_id)
    redis.call('ZREM', KEYS[6], old_id)
    redis.call('ZADD', KEYS[3], score, new_id)
    redis.call('HSET', KEYS[4], new_id, data)
    redis.call('ZADD', KEYS[6], redis.call('INCR', KEYS[7]), new_id)
  end
  at = at + 4
end
return 1
"""

# KEYS: members seq zset, members hash. ARGV: cursor (exclusive), limit.
# Returns the last sequence number read (the cursor when none), then seq, member
# JSON, ... in commit order. A member expired meanwhile is passed over.
MEMBERS_AFTER = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES',
                       'LIMIT', 0, tonumber(ARGV[2]))
local out = {ARGV[1]}
for i = 1, #ids, 2 do
  out[1] = ids[i + 1]
  local data = redis.call('HGET', KEYS[2], ids[i])
  if data then
    out[#out + 1] = ids[i + 1]
    out[#out + 1] = data
  end
end
return out
"""

# KEYS: the lease key. ARGV: the holder's token.
# Deletes the lease only while it still holds that token: a holder whose lease ran
# out (and was taken by another instance) cannot release the new holder's lease.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: outbox sinks set, then queue, item per item. ARGV: n_items, items...
OUTBOX_PUT = _PUT_ITEMS + """
put_items(KEYS[1], 2, 2, tonumber(ARGV[1]))
return 0
"""

# Shared by the outbox scripts a delivery pass runs under its sink's lease. The lease
# key is the last of KEYS and the holder's token the last of ARGV, '' when the caller
# holds no lease (nothing to check). False when another token holds the lease now.
_FENCE = """
local function fenced()
  local token = ARGV[#ARGV]
  return token ~= '' and redis.call('GET', KEYS[#KEYS]) ~= token
end
"""

# KEYS: queue, then item per alert id, then the lease key when fenced.
# ARGV: alert ids..., lease token ('' when not fenced).
# Removes the items from the queue, all or (fenced out: -1) none. Ids not queued are
# ignored. Returns how many ids were given.
OUTBOX_DONE = _FENCE + """
if fenced() then return -1 end
for i = 1, #ARGV - 1 do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('DEL', KEYS[i + 1])
end
return #ARGV - 1
"""

# KEYS: item, then the lease key when fenced. ARGV: next_attempt text, error, lease
# token ('' when not fenced).
# A retry for an item already done is ignored rather than resurrecting half an item.
# The item keeps its place in the queue (its score): the items after it wait for it.
# -1, writing nothing, when fenced out.
OUTBOX_RETRY = _FENCE + """
if fenced() then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'next_attempt', ARGV[1], 'last_error', ARGV[2])
return 1
"""

# KEYS: stories zset, stories hash, members zset, members hash, members seq zset.
# ARGV: cutoff (exclusive). Returns the number of stories dropped.
EXPIRE = """
local function drop(zkey, hkey, cutoff, also)
  local ids = redis.call('ZRANGEBYSCORE', zkey, '-inf', '(' .. cutoff)
  for i = 1, #ids, 1000 do
    local chunk = {unpack(ids, i, math.min(i + 999, #ids))}
    redis.call('HDEL', hkey, unpack(chunk))
    if also then redis.call('ZREM', also, unpack(chunk)) end
  end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', '(' .. cutoff)
  return #ids
end
local n = drop(KEYS[1], KEYS[2], ARGV[1], nil)
drop(KEYS[3], KEYS[4], ARGV[1], KEYS[5])
return n
"""
