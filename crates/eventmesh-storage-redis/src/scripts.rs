//! The Lua scripts behind every operation that touches more than one command, so that each runs
//! atomically on the server (Redis runs a script with no other command in between, and writes its
//! effects to the AOF as one transaction).
//!
//! Every script answers a table whose first element is a status: `ok`, `notopic` (the topic is
//! not in the topic set) or `nogroup` (the cursor's consumer group does not exist). Times come
//! from the server's `TIME`, so that the leases set by several mesh nodes share one clock.
//!
//! Leases live in the pending-entry list (PEL) itself, with `H` = the store's `max_lease`: an
//! entry leased until `T` is given the delivery time `T − H` (`XCLAIM … TIME (T − H) JUSTID`,
//! which never changes the delivery count), so it becomes *due* exactly when its idle time
//! reaches `H`, and `XAUTOCLAIM … H` hands due entries out again, counting the delivery.

use std::sync::LazyLock;

use redis::Script;

/// `now` in Unix milliseconds (rounded up, so that a lease never ends early) and helpers.
const PRELUDE: &str = r"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.ceil(tonumber(t[2]) / 1000)
end
local function int(x)
  return string.format('%d', x)
end
local function is_err(r)
  return type(r) == 'table' and r['err'] ~= nil
end
local function nogroup(r)
  return string.find(r['err'], 'NOGROUP', 1, true) ~= nil
end
local function field(fields, name)
  if type(fields) ~= 'table' then return '' end
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return ''
end
-- Gives the pending entries `ids` the delivery time `at` (their lease or nack deadline − H).
local function relet(stream, group, consumer, ids, at)
  if #ids == 0 then return end
  local args = {'XCLAIM', stream, group, consumer, '0'}
  for _, id in ipairs(ids) do args[#args + 1] = id end
  args[#args + 1] = 'TIME'
  args[#args + 1] = at
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
";

/// KEYS: topics, stream. ARGV: topic, max_len (`0` = none), record…
/// Answers `{ok, {id…}}`.
const PUBLISH: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'notopic'} end
local ids = {}
for i = 3, #ARGV do
  if ARGV[2] ~= '0' then
    ids[#ids + 1] = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'r', ARGV[i])
  else
    ids[#ids + 1] = redis.call('XADD', KEYS[2], '*', 'r', ARGV[i])
  end
end
return {'ok', ids}
";

/// KEYS: topics, stream. ARGV: topic. Answers `{ok}`.
const DELETE_TOPIC: &str = r"
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return {'notopic'} end
redis.call('DEL', KEYS[2])
return {'ok'}
";

/// Creates a cursor (`subscribe`: an existing one keeps its position) or moves one (`seek`:
/// the group is re-created at the new position, which forgets its pending entries).
/// KEYS: topics, stream, members. ARGV: topic, group, how (`id` | `offset`), id, id before it,
/// member entry (or empty), `subscribe` | `seek`. Answers `{ok}`.
const POSITION: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'notopic'} end
local start = ARGV[4]
if ARGV[3] == 'offset' then
  -- At or after an existing entry: start just before it. Past the end: at the end.
  local r = redis.call('XRANGE', KEYS[2], ARGV[4], '+', 'COUNT', 1)
  if #r == 0 then start = '$' else start = ARGV[5] end
end
if ARGV[7] == 'seek' then
  if redis.call('EXISTS', KEYS[2]) == 0 then return {'nogroup'} end
  if redis.call('XGROUP', 'DESTROY', KEYS[2], ARGV[2]) == 0 then return {'nogroup'} end
  redis.call('XGROUP', 'CREATE', KEYS[2], ARGV[2], start, 'MKSTREAM')
else
  local c = redis.pcall('XGROUP', 'CREATE', KEYS[2], ARGV[2], start, 'MKSTREAM')
  if is_err(c) and string.find(c['err'], 'BUSYGROUP', 1, true) == nil then
    return redis.error_reply(c['err'])
  end
end
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[3], int(now_ms()), ARGV[6]) end
return {'ok'}
";

/// KEYS: topics, stream, members. ARGV: topic, group, member entry (or empty).
/// Answers `{ok}` or `{nogroup}`.
const UNSUBSCRIBE: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'notopic'} end
if ARGV[3] ~= '' then redis.call('ZREM', KEYS[3], ARGV[3]) end
if redis.call('EXISTS', KEYS[2]) == 0 then return {'nogroup'} end
if redis.call('XGROUP', 'DESTROY', KEYS[2], ARGV[2]) == 0 then return {'nogroup'} end
return {'ok'}
";

/// Due redeliveries first (oldest id first), then new entries; every one leased until
/// now + lease. KEYS: topics, stream, members. ARGV: topic, group, consumer, max, lease ms, H ms,
/// member entry (or empty), how stale a member's last-use mark may get (ms), where the PEL scan
/// starts (`0-0`: from the oldest), how many PEL entries one fetch may examine.
/// Answers `{ok, last, {id…}, {record…}, {count…}, scan}` where `last` is the id of the stream's
/// last entry when the group has read everything (for the blocking wait), else false, and `scan`
/// is where the next fetch's PEL scan resumes (`0-0` once the scan went round).
const FETCH: &str = r"
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'notopic'} end
local max = tonumber(ARGV[4])
local now = now_ms()
local at = int(now + tonumber(ARGV[5]) - tonumber(ARGV[6]))
local ids, recs, counts = {}, {}, {}
local claimed = {}
local cursor = ARGV[9]
local budget = tonumber(ARGV[10])
repeat
  -- XAUTOCLAIM examines at most ten entries per one it may claim.
  local count = math.max(1, math.min(max - #ids, math.floor(budget / 10)))
  budget = budget - count * 10
  local r = redis.pcall('XAUTOCLAIM', KEYS[2], ARGV[2], ARGV[3], ARGV[6], cursor, 'COUNT', count)
  if is_err(r) then
    if nogroup(r) then return {'nogroup'} end
    return redis.error_reply(r['err'])
  end
  cursor = r[1]
  for _, e in ipairs(r[2]) do
    if type(e) == 'table' then
      ids[#ids + 1] = e[1]
      recs[#recs + 1] = field(e[2], 'r')
      claimed[#claimed + 1] = e[1]
    end
  end
until cursor == '0-0' or #ids >= max or budget <= 0
for i, id in ipairs(claimed) do
  local p = redis.call('XPENDING', KEYS[2], ARGV[2], id, id, 1)
  counts[i] = (#p == 1) and p[1][4] or 1
end
local want = max - #ids
local last = false
if want > 0 then
  local r = redis.pcall('XREADGROUP', 'GROUP', ARGV[2], ARGV[3], 'COUNT', want, 'STREAMS', KEYS[2], '>')
  if is_err(r) then
    if nogroup(r) then return {'nogroup'} end
    return redis.error_reply(r['err'])
  end
  local got = 0
  if type(r) == 'table' and r[1] then
    for _, e in ipairs(r[1][2]) do
      ids[#ids + 1] = e[1]
      recs[#recs + 1] = field(e[2], 'r')
      counts[#counts + 1] = 1
      got = got + 1
    end
  end
  if got < want then
    local l = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
    if #l > 0 then last = l[1][1] else last = '0-0' end
  end
end
relet(KEYS[2], ARGV[2], ARGV[3], ids, at)
if ARGV[7] ~= '' then
  local seen = redis.call('ZSCORE', KEYS[3], ARGV[7])
  if not seen or now - tonumber(seen) > tonumber(ARGV[8]) then
    redis.call('ZADD', KEYS[3], int(now), ARGV[7])
  end
end
return {'ok', last, ids, recs, counts, cursor}
";

/// Nack (deadline = now + delay) or lease extension (deadline = now + lease) of the deliveries
/// named by (id, delivery count) pairs; an entry no longer pending, or pending under a later
/// delivery, is left alone. KEYS: stream. ARGV: group, consumer, ms from now, H ms, (id, count)….
/// Answers `{ok, changed}`.
const RELET: &str = r"
local now = now_ms()
local at = int(now + tonumber(ARGV[3]) - tonumber(ARGV[4]))
local todo = {}
for i = 5, #ARGV, 2 do
  local p = redis.pcall('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if is_err(p) then
    if nogroup(p) then return {'nogroup'} end
    return redis.error_reply(p['err'])
  end
  if #p == 1 and tonumber(p[1][4]) == tonumber(ARGV[i + 1]) then todo[#todo + 1] = ARGV[i] end
end
relet(KEYS[1], ARGV[1], ARGV[2], todo, at)
return {'ok', #todo}
";

/// KEYS: stream. ARGV: group. Answers `{ok, last-delivered-id, pending, lowest pending id or
/// false, lag or false}`.
const CURSOR_INFO: &str = r"
local g = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if is_err(g) then return {'nogroup'} end
for _, grp in ipairs(g) do
  local f = {}
  for i = 1, #grp, 2 do f[grp[i]] = grp[i + 1] end
  if f['name'] == ARGV[1] then
    local s = redis.call('XPENDING', KEYS[1], ARGV[1])
    return {'ok', f['last-delivered-id'], s[1], s[2] or false, f['lag'] or false}
  end
end
return {'nogroup'}
";

/// Deletes BROADCASTING member groups unused for the expiry. KEYS: members. ARGV: expiry ms,
/// stream key prefix, how many at most. Answers `{ok, {entry…}}`.
const EXPIRE_MEMBERS: &str = r"
local cutoff = int(now_ms() - tonumber(ARGV[1]))
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(old) do
  local nl = string.find(m, '\n', 1, true)
  if nl then
    redis.pcall('XGROUP', 'DESTROY', ARGV[2] .. string.sub(m, 1, nl - 1), string.sub(m, nl + 1))
  end
  redis.call('ZREM', KEYS[1], m)
end
return {'ok', old}
";

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}{body}"))
}

pub(crate) static PUBLISH_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(PUBLISH));
pub(crate) static DELETE_TOPIC_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(DELETE_TOPIC));
pub(crate) static POSITION_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(POSITION));
pub(crate) static UNSUBSCRIBE_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(UNSUBSCRIBE));
pub(crate) static FETCH_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(FETCH));
pub(crate) static RELET_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(RELET));
pub(crate) static CURSOR_INFO_SCRIPT: LazyLock<Script> = LazyLock::new(|| script(CURSOR_INFO));
pub(crate) static EXPIRE_MEMBERS_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| script(EXPIRE_MEMBERS));
