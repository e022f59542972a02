-- Tests for plugin/fluent-bit/devo.lua. Run from the repo root: luajit test/lua/devo_test.lua
-- Plain LuaJIT, no rocks. Tables are built the way Fluent Bit 2.2+ builds them from msgpack: arrays
-- and maps carry a metatable {type = 1} / {type = 2}, and nulls are the global `flb_null` (as with
-- `enable_flb_null on`; Fluent Bit uses a NULL light userdata, here a unique userdata stands in).
-- The last line printed is "N passed, M failed"; the exit status is non-zero on any failure.

flb_null = newproxy(true)
getmetatable(flb_null).__tostring = function() return 'flb_null' end

local script = (arg and arg[1]) or 'plugin/fluent-bit/devo.lua'
dofile(script)

local ARRAY_MT, MAP_MT = { type = 1 }, { type = 2 }
function arr(t) return setmetatable(t, ARRAY_MT) end
function map(t) return setmetatable(t, MAP_MT) end

local passed, failed = 0, 0

local function check(name, got, want)
  if got == want then
    passed = passed + 1
  else
    failed = failed + 1
    print(('FAIL %s\n  got:  %s\n  want: %s'):format(name, tostring(got), tostring(want)))
  end
end

local function json(v) return devo_json_encode(v) end

-- Containers: Fluent Bit's metatable decides, so empty {} and [] stay apart.
check('empty map', json(map{}), '{}')
check('empty array', json(arr{}), '[]')
check('empty table without metatable', json({}), '{}')
check('plain sequence without metatable', json({ 1, 2, 3 }), '[1,2,3]')
check('plain table with a gap is a map', json({ [1] = 'a', [3] = 'b' }):sub(1, 1), '{')
check('array metatable wins over keys', json(arr{ 'x' }), '["x"]')
check('map metatable with key 1 is a map', json(map{ [1] = true }), '{"1":true}')
check('nested', json(map{ a = arr{ map{ b = arr{} }, map{} } }), '{"a":[{"b":[]},{}]}')
check('deep nesting', json(arr{ arr{ arr{ map{ k = arr{ 1 } } } } }), '[[[{"k":[1]}]]]')

-- Nulls.
check('flb_null value', json(map{ ClientIP = flb_null }), '{"ClientIP":null}')
check('flb_null in an array', json(arr{ flb_null, 1, flb_null }), '[null,1,null]')
check('hole in an array (enable_flb_null off)', json(arr{ 1, nil, 3 }), '[1,null,3]')
check('bare null', json(flb_null), 'null')

-- Numbers.
check('2^53-1', json(9007199254740991), '9007199254740991')
check('-(2^53-1)', json(-9007199254740991), '-9007199254740991')
check('2^53', json(2 ^ 53), '9007199254740992')
check('negative', json(-3), '-3')
check('zero', json(0), '0')
check('integral float prints as integer', json(1156492.00), '1156492')
check('1E1', json(1E1), '10')
check('1e15 without exponent', json(1e15), '1000000000000000')
check('0.1', json(0.1), '0.1')
check('1e-7', tonumber(json(1e-7)), 1e-7)
check('1e-7 text', json(1e-7), '1e-07')
check('1.5e300', tonumber(json(1.5e300)), 1.5e300)
check('2^60 reads back exactly', tonumber(json(2 ^ 60)), 2 ^ 60)
check('needs 17 digits', tonumber(json(0.1 + 0.2)), 0.1 + 0.2)
check('0.1+0.2 text', json(0.1 + 0.2), '0.30000000000000004')
check('shortest form: 16 digits', json(0.1 + 0.7), '0.7999999999999999')
check('shortest form: 123.456', json(123.456), '123.456')
check('-2.5', json(-2.5), '-2.5')
check('NaN', json(0 / 0), 'null')
check('+inf', json(math.huge), 'null')
check('-inf', json(-math.huge), 'null')

-- Strings: UTF-8 bytes pass through; quotes, backslashes, control characters and DEL are escaped.
check('accent', json('é'), '"é"')
check('CJK', json('漢字'), '"漢字"')
check('emoji', json('😀 ok'), '"😀 ok"')
check('quote and backslash', json('a"b\\c'), '"a\\"b\\\\c"')
check('short escapes', json('\b\f\n\r\t'), '"\\b\\f\\n\\r\\t"')
check('CRLF', json('a\r\nb'), '"a\\r\\nb"')
check('NUL', json('a\0b'), '"a\\u0000b"')
check('BEL and ESC', json('\7\27'), '"\\u0007\\u001b"')
check('0x1f', json('\31'), '"\\u001f"')
check('DEL', json('\127'), '"\\u007f"')
check('slash is not escaped', json('a/b'), '"a/b"')
check('JSON inside a string', json('{"a":[1]}'), '"{\\"a\\":[1]}"')
check('empty string', json(''), '""')

-- Booleans and keys.
check('booleans', json(arr{ true, false }), '[true,false]')
check('escaped key', json(map{ ['k"\n'] = 1 }), '{"k\\"\\n":1}')
check('numeric map key', json(map{ [5] = 'x' }), '{"5":"x"}')

-- to_devo itself.
do
  local rec = map{ Id = 'abc', Parameters = arr{}, Extra = map{}, ClientIP = flb_null }
  local code, ts, out = to_devo('cloud.office365.management.exchange', 1700000000.5, rec)
  check('to_devo code', code, 2)
  check('to_devo keeps timestamp', ts, 1700000000.5)
  check('to_devo devo_tag', out.devo_tag, 'cloud.office365.management.exchange')
  check('to_devo message is a string', type(out.message), 'string')
  local keys = 0
  for _ in pairs(out) do keys = keys + 1 end
  check('to_devo record has two fields', keys, 2)
  -- Key order is free, so check each member is present exactly once.
  for _, member in ipairs({ '"Id":"abc"', '"Parameters":[]', '"Extra":{}', '"ClientIP":null' }) do
    local _, count = out.message:gsub(member:gsub('[%[%]]', '%%%0'), '')
    check('to_devo message has ' .. member, count, 1)
  end
  check('to_devo message is one object', out.message:match('^{.*}$') ~= nil, true)
end

do -- already Devo-shaped: returned as is, code 0
  local rec = map{ devo_tag = 'my.app.acme.audit', message = '{"a":1}' }
  local code, ts, out = to_devo('cloud.office365.management.exchange', 42, rec)
  check('devo-shaped code', code, 0)
  check('devo-shaped timestamp', ts, 42)
  check('devo-shaped record is the same table', out, rec)
end

do -- a third field, or a non-string message, means it is an audit record after all
  local code, _, out = to_devo('t.x', 0, map{ devo_tag = 'a.b', message = 'm', Id = '1' })
  check('three fields are encoded', code, 2)
  check('three fields keep the tag', out.devo_tag, 't.x')
  code = to_devo('t.x', 0, map{ devo_tag = 'a.b', message = map{} })
  check('map message is encoded', code, 2)
end

print(('%d passed, %d failed'):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
