-- HMAC-SHA256 in lowercase hex through LuaJIT FFI to OpenSSL's libcrypto (Debian has no
-- lua-resty-string), a constant-time string compare, raw SHA-256 (proof-of-work) and random
-- hex (nonces) from OpenSSL's CSPRNG. The same HMAC as the backend's crypto.rs: tokens signed
-- by one verify in the other.
--
-- Built on the one-shot SHA256() with the key's inner and outer pads computed once per key:
-- OpenSSL 3's HMAC() looks its algorithms up by name on every call, which made it the most
-- expensive step of the edge's buy gate.
local ffi = require "ffi"

local ffi_new = ffi.new
local ffi_str = ffi.string
local byte = string.byte
local char = string.char
local format = string.format
local concat = table.concat
local bxor = require("bit").bxor
local bor = require("bit").bor

local _M = { _VERSION = "0.3" }

ffi.cdef [[
unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);
int RAND_bytes(unsigned char *buf, int num);
]]

local ok, crypto = pcall(ffi.load, "libcrypto.so.3")
if not ok then
    crypto = ffi.C
end

local BLOCK = 64
local md_buf = ffi_new("unsigned char[32]")

-- "00".."ff"
local HEX = {}
for i = 0, 255 do
    HEX[i] = format("%02x", i)
end

local hex_parts = {}
local function hex_of_md()
    for i = 0, 31 do
        hex_parts[i + 1] = HEX[md_buf[i]]
    end
    return concat(hex_parts, "", 1, 32)
end

local function sha256_raw(s)
    crypto.SHA256(s, #s, md_buf)
    return ffi_str(md_buf, 32)
end

-- key -> { inner pad, outer pad }; a process holds a handful of keys.
local pads = {}

local function pads_of(key)
    local p = pads[key]
    if p then
        return p[1], p[2]
    end
    local k = key
    if #k > BLOCK then
        k = sha256_raw(k)
    end
    local ipad, opad = {}, {}
    for i = 1, BLOCK do
        local b = byte(k, i) or 0
        ipad[i] = char(bxor(b, 0x36))
        opad[i] = char(bxor(b, 0x5c))
    end
    p = { concat(ipad), concat(opad) }
    pads[key] = p
    return p[1], p[2]
end

function _M.sign(key, msg)
    if type(key) ~= "string" or type(msg) ~= "string" then
        error("hmac.sign: key and msg must be strings", 2)
    end
    local ipad, opad = pads_of(key)
    local inner = sha256_raw(ipad .. msg)
    local outer = opad .. inner
    crypto.SHA256(outer, #outer, md_buf)
    return hex_of_md()
end

-- The raw 32-byte SHA-256 of s.
function _M.sha256(s)
    return sha256_raw(s)
end

-- n random bytes from OpenSSL's CSPRNG, as 2n lowercase hex digits.
local rand_buf = ffi_new("unsigned char[32]")
function _M.random_hex(n)
    if n > 32 then
        error("hmac.random_hex: at most 32 bytes", 2)
    end
    if crypto.RAND_bytes(rand_buf, n) ~= 1 then
        error("hmac.random_hex: the random source failed", 2)
    end
    for i = 0, n - 1 do
        hex_parts[i + 1] = HEX[rand_buf[i]]
    end
    return concat(hex_parts, "", 1, n)
end

function _M.equal(a, b)
    if type(a) ~= "string" or type(b) ~= "string" or #a ~= #b then
        return false
    end
    local acc = 0
    for i = 1, #a do
        acc = bor(acc, bxor(byte(a, i), byte(b, i)))
    end
    return acc == 0
end

return _M
