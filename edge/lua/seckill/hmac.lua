-- HMAC-SHA256 in lowercase hex through LuaJIT FFI to OpenSSL's libcrypto (Debian has no
-- lua-resty-string), and a constant-time string compare. The same primitive as the
-- backend's crypto.rs: tokens signed by one verify in the other.
local ffi = require "ffi"

local ffi_new = ffi.new
local ffi_str = ffi.string
local byte = string.byte
local format = string.format
local bxor = require("bit").bxor
local bor = require("bit").bor

local _M = { _VERSION = "0.1" }

ffi.cdef [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
]]

-- Inside nginx libcrypto is already loaded; under busted it is loaded by name.
local ok, crypto = pcall(ffi.load, "libcrypto.so.3")
if not ok then
    crypto = ffi.C
end

local md_buf = ffi_new("unsigned char[32]")
local md_len = ffi_new("unsigned int[1]")

local function to_hex(s)
    return (s:gsub(".", function(c) return format("%02x", byte(c)) end))
end
_M.to_hex = to_hex

-- Returns hex(HMAC-SHA256(key, msg)).
function _M.sign(key, msg)
    if type(key) ~= "string" or type(msg) ~= "string" then
        error("hmac.sign: key and msg must be strings", 2)
    end
    local out = crypto.HMAC(crypto.EVP_sha256(), key, #key, msg, #msg, md_buf, md_len)
    if out == nil then
        return nil, "HMAC failed"
    end
    return to_hex(ffi_str(md_buf, md_len[0]))
end

-- Equality whose time does not depend on where the strings differ.
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
