-- luacheck (Debian's lua-check), run by scripts/test on every Lua file of the project.
std = "luajit"
max_line_length = 120
codes = true

-- The edge: OpenResty's globals.
files["edge/lua"] = { std = "ngx_lua" }
-- The edge's specs run under busted, with a stand-in `ngx` they set up themselves.
files["edge/spec"] = { std = "ngx_lua+busted", globals = { "ngx" } }
-- Redis's scripts: the globals Redis gives a script (Lua 5.1 with its bit library).
files["backend/src/store/scripts"] = {
    std = "lua51",
    read_globals = { "redis", "KEYS", "ARGV", "bit", "cjson", "cmsgpack", "struct", "unpack" },
}
files["bench"] = { read_globals = { "wrk", "id" }, globals = { "setup", "init", "request", "response", "done" } }
