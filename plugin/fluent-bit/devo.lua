--[[
devo.lua: Fluent Bit Lua filter that shapes m365-forward records for the syslog output to Devo.

Fluent Bit's syslog output sends one string field as the message (`syslog_message_key`; a map or
array value is skipped) and takes the app name, which is Devo's tag and so picks the Devo table,
from another (`syslog_appname_key`). `to_devo` turns a structured audit record into

    { devo_tag = <the Fluent Bit tag>, message = <the record as JSON text> }

A record that already has exactly that shape (the collector's `record_format: devo`) passes
through unchanged.

    [FILTER]
        Name             lua
        Match            cloud.office365.management.*
        script           devo.lua
        call             to_devo
        # REQUIRED to keep JSON nulls, see below (no comments after a value in this format)
        enable_flb_null  on
    [OUTPUT]
        Name                syslog
        Syslog_Appname_Key  devo_tag
        Syslog_Message_Key  message
        ...

The JSON in `message` is the same JSON value the Management Activity API delivered, with these
limits (Fluent Bit 2.2+ with LuaJIT):
- Nulls survive only with `enable_flb_null on`: then Fluent Bit presents them as the global
  `flb_null` value. Without it a null becomes a Lua nil, so a null map value disappears with its
  key, a null inside an array becomes `null` only if a non-null element follows it (a hole), and
  trailing nulls of an array disappear.
- `{}` and `[]` stay apart because Fluent Bit 2.2+ gives every table it builds from msgpack a
  metatable whose field `type` is 1 (array) or 2 (map). Older versions do not, and there an empty
  table is written as `{}`.
- Numbers are LuaJIT doubles: integers are exact up to 2^53; larger ones are rounded, and Fluent Bit (5.1.1) hands integers of 2^63 - 512 and above to Lua as -9223372036854775808 (src/flb_lua.c pushes them through a double into a 64-bit integer). Use output.record_format: devo in the collector where such values matter.
- Key order is not kept (Lua tables have none); JSON objects are unordered anyway.

Fluent Bit loads this file as a chunk and calls the global named by `call`, so the functions are
globals and the file returns nothing. Written for LuaJIT / Lua 5.1.
]]

local ARRAY, MAP = 1, 2 -- Fluent Bit's metatable `type` values (FLB_LUA_L2C_TYPE_ARRAY / _MAP)

local format, byte, gsub, concat = string.format, string.byte, string.gsub, table.concat
local floor, huge, maxn = math.floor, math.huge, table.maxn

local function is_null(v)
  -- `flb_null` exists only with `enable_flb_null on`; read it at call time, not at load time.
  return v == nil or (flb_null ~= nil and v == flb_null)
end

-- JSON's short escapes; every other control character becomes \u00XX.
local SHORT_ESCAPES = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }

local function escape_char(c)
  return SHORT_ESCAPES[c] or format('\\u%04x', byte(c))
end

local function encode_string(s)
  -- Bytes >= 0x80 pass through, so UTF-8 stays UTF-8. 0x7f (DEL) is legal in JSON but escaped so the
  -- syslog line carries no raw control byte at all. %z is the Lua 5.1 way to match a zero byte.
  return '"' .. gsub(s, '[%z\1-\31"\\\127]', escape_char) .. '"'
end

local function encode_number(n)
  -- NaN and ±inf have no JSON form; `null` keeps the message parseable. (NaN ~= NaN.)
  if n ~= n or n == huge or n == -huge then return 'null' end
  -- Integral values up to 2^53 are exact doubles: print all digits, never `1e+15` or `5.0`.
  if n == floor(n) and n >= -2^53 and n <= 2^53 then return format('%.0f', n) end
  -- Anything else: the shortest %g that reads back as the very same double (17 digits always do).
  for digits = 14, 16 do
    local s = format('%.' .. digits .. 'g', n)
    if tonumber(s) == n then return s end
  end
  return format('%.17g', n)
end

-- Array or map? Fluent Bit's metatable says so; a table built elsewhere (another filter, a test)
-- counts as an array when its keys are exactly 1..n with n >= 1.
local function table_kind(t)
  local mt = getmetatable(t)
  local kind = type(mt) == 'table' and rawget(mt, 'type')
  if kind == ARRAY or kind == MAP then return kind end
  local count, max = 0, 0
  for k in pairs(t) do
    if type(k) ~= 'number' or k < 1 or k ~= floor(k) then return MAP end
    count = count + 1
    if k > max then max = k end
  end
  if count > 0 and max == count then return ARRAY end
  return MAP
end

local encode_value

local function encode_array(t)
  -- maxn, not #: without enable_flb_null a null element is a hole, and # may stop at any hole.
  local parts = {}
  for i = 1, maxn(t) do parts[i] = encode_value(t[i]) end
  return '[' .. concat(parts, ',') .. ']'
end

local function encode_map(t)
  local parts, n = {}, 0
  for k, v in pairs(t) do
    -- JSON keys are strings; a numeric (or other) key of a map is written as its text.
    local key = type(k) == 'string' and k or (type(k) == 'number' and encode_number(k) or tostring(k))
    n = n + 1
    parts[n] = encode_string(key) .. ':' .. encode_value(v)
  end
  return '{' .. concat(parts, ',') .. '}'
end

encode_value = function(v)
  if is_null(v) then return 'null' end
  local t = type(v)
  if t == 'string' then return encode_string(v) end
  if t == 'number' then return encode_number(v) end
  if t == 'boolean' then return v and 'true' or 'false' end
  if t == 'table' then
    if table_kind(v) == ARRAY then return encode_array(v) end
    return encode_map(v)
  end
  -- Functions, threads, other userdata: nothing from msgpack arrives like this; keep the JSON valid.
  return 'null'
end

--- The JSON text of a Lua value shaped the way Fluent Bit presents msgpack (see the header).
function devo_json_encode(value)
  return encode_value(value)
end

local function is_devo_shaped(record)
  if type(record.devo_tag) ~= 'string' or type(record.message) ~= 'string' then return false end
  local n = 0
  for _ in pairs(record) do n = n + 1 end
  return n == 2
end

--- Fluent Bit filter callback. Returns 2 (record replaced, timestamp kept) or 0 (unchanged).
function to_devo(tag, timestamp, record)
  if is_devo_shaped(record) then return 0, timestamp, record end
  return 2, timestamp, { devo_tag = tag, message = encode_value(record) }
end
