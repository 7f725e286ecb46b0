-- tarn_authz.lua: HAProxy (2.6, Lua 5.3) as a policy enforcement point for tarn-authz.
--
-- The action `tarn_authz` maps an Open Inference Protocol request to a Ranger access and asks
-- tarn-authz's /authorize. It never reads identity from the client: the user is the txn
-- variable txn.tarn_user, which the configuration sets from what HAProxy itself
-- authenticated (a basic-auth userlist, or a verified JWT claim); the configuration deletes
-- any client-sent X-TARN-User first. Outcome, in txn.tarn_authz:
--   allow        forward to Triton
--   deny         403 (a deny, an unmapped path, or no authenticated user)
--   unavailable  503: authz did not answer (fail closed)
--   index        answered by the service lua.tarn_repository_index (filtered by `list`)
-- A path not in canonical form is answered 400 by the action itself (txn:done).
--
--   /v2/models/{m}[/versions/{digits}]/infer|generate|generate_stream -> infer on m
--   /v2/models/{m}[/versions/{digits}][/config|/ready]               -> metadata on m
--   /v2/repository/index                           -> the models the user may `list`
--   /v2, /v2/health/live, /v2/health/ready         -> any authenticated user
--   anything else (stats, load/unload, trace, ...) -> deny
--
-- The mapping follows Triton 2.51's own routing (src/http_server.cc, HTTPAPIServer::Handle):
-- RE2 FullMatch on the raw path (query cut off), case-sensitive, no percent-decoding and no
-- dot-segment or slash clean-up, so `%69dentity` and `identity;x` are other model names to
-- Triton. Rather than guess what an encoded or dotted path means to each hop, the action refuses
-- any path outside the canonical form (see `canonical`); what it accepts, Triton routes verbatim.
--
-- Settings come from the environment (the configuration's `global` section sets them with
-- setenv): TARN_AUTHZ_URL, TARN_AUTHZ_GATEWAY_TOKEN, TARN_AUTHZ_CACHE_TTL_S (default 2),
-- TARN_AUTHZ_TIMEOUT_MS (default 1000), TARN_AUTHZ_INDEX_URL and TARN_AUTHZ_INDEX_SECRET
-- (an internal listener that reaches Triton's unfiltered index; see the template).

local AUTHZ_URL = os.getenv("TARN_AUTHZ_URL") or "http://127.0.0.1:8096"
local TOKEN = os.getenv("TARN_AUTHZ_GATEWAY_TOKEN") or ""
local CACHE_TTL_S = tonumber(os.getenv("TARN_AUTHZ_CACHE_TTL_S") or "2") or 2
local TIMEOUT_MS = tonumber(os.getenv("TARN_AUTHZ_TIMEOUT_MS") or "1000") or 1000
local INDEX_URL = os.getenv("TARN_AUTHZ_INDEX_URL") or ""
local INDEX_SECRET = os.getenv("TARN_AUTHZ_INDEX_SECRET") or ""
local CACHE_MAX = 50000

-- Decisions by user, action and model; each HAProxy thread has its own Lua state and cache.
local cache, cache_size = {}, 0

local function now_s()
    local t = core.now()
    return t.sec + t.usec / 1e6
end

local function cache_get(key)
    local hit = cache[key]
    if hit and hit.expires > now_s() then
        return hit.allowed
    end
    return nil
end

local function cache_put(key, allowed)
    if CACHE_TTL_S <= 0 then return end
    if cache_size >= CACHE_MAX then
        cache, cache_size = {}, 0
    end
    if cache[key] == nil then cache_size = cache_size + 1 end
    cache[key] = { allowed = allowed, expires = now_s() + CACHE_TTL_S }
end

local function url_encode(s)
    return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

local function json_string(s)
    local escaped = s:gsub('[%c"\\]', function(c)
        if c == '"' then return '\\"' elseif c == "\\" then return "\\\\" end
        return string.format("\\u%04x", string.byte(c))
    end)
    return '"' .. escaped .. '"'
end

-- Canonical: starts with "/", only RFC 3986 unreserved and sub-delim characters, ":" and "@"
-- (so no "%", ";", backslash, "#", spaces or non-ASCII), no empty segment ("//", a trailing "/")
-- and no "." or ".." segment.
local function canonical(path)
    if path:sub(1, 1) ~= "/" or path:find("[^%w%-%._~!$&'()*+,=:@/]") then return false end
    if path:find("//", 1, true) or (path ~= "/" and path:sub(-1) == "/") then return false end
    return not (path .. "/"):find("/%.%.?/")
end

local MODEL_ACTIONS = {
    [""] = "metadata", ["/config"] = "metadata", ["/ready"] = "metadata",
    ["/infer"] = "infer", ["/generate"] = "infer", ["/generate_stream"] = "infer",
}

-- What a path asks for: kind ("server", "index", "model", "deny", "refuse"), model, action.
local function classify(path)
    if not canonical(path) then
        return "refuse"
    end
    if path == "/v2" or path == "/v2/health/live" or path == "/v2/health/ready" then
        return "server"
    end
    if path == "/v2/repository/index" then
        return "index"
    end
    local model, rest = path:match("^/v2/models/([^/]+)(.*)$")
    if not model or model == "stats" then
        return "deny"
    end
    local _, after_version = rest:match("^/versions/(%d+)(.*)$")
    if after_version then rest = after_version end
    local action = MODEL_ACTIONS[rest]
    if action then
        return "model", model, action
    end
    return "deny"
end

local function authz_headers(user, extra)
    local headers = { ["X-TARN-Token"] = { TOKEN }, ["X-TARN-User"] = { user } }
    for k, v in pairs(extra or {}) do headers[k] = { v } end
    return headers
end

-- true / false, or nil when authz could not answer.
local function ask(user, model, action)
    local key = user .. "\0" .. action .. "\0" .. model
    local cached = cache_get(key)
    if cached ~= nil then return cached end
    local client = core.httpclient()
    local res = client:get{
        url = AUTHZ_URL .. "/authorize?action=" .. action .. "&model=" .. url_encode(model),
        headers = authz_headers(user, { ["Accept"] = "text/plain" }),
        timeout = TIMEOUT_MS,
    }
    if not res or res.status ~= 200 then
        if res and res.status == 400 then return false end -- authz rejects the question: deny
        return nil
    end
    local allowed = res.body == "true"
    cache_put(key, allowed)
    return allowed
end

-- The decisions for many models at once (one batch request for those not cached).
local function ask_many(user, models, action)
    local answers, missing = {}, {}
    for i, model in ipairs(models) do
        local cached = cache_get(user .. "\0" .. action .. "\0" .. model)
        if cached == nil then missing[#missing + 1] = i else answers[i] = cached end
    end
    if #missing == 0 then return answers end
    local checks = {}
    for n, i in ipairs(missing) do
        checks[n] = '{"model":' .. json_string(models[i]) .. ',"action":"' .. action .. '"}'
    end
    local client = core.httpclient()
    local res = client:post{
        url = AUTHZ_URL .. "/authorize",
        headers = authz_headers(user, { ["Accept"] = "text/plain", ["Content-Type"] = "application/json" }),
        body = '{"checks":[' .. table.concat(checks, ",") .. ']}',
        timeout = TIMEOUT_MS,
    }
    if not res or res.status ~= 200 then return nil end
    local n = 0
    for line in res.body:gmatch("[^\n]+") do
        n = n + 1
        local i = missing[n]
        if i == nil then return nil end
        answers[i] = line == "true"
        cache_put(user .. "\0" .. action .. "\0" .. models[i], answers[i])
    end
    if n ~= #missing then return nil end
    return answers
end

local function enforce(txn)
    local user = txn:get_var("txn.tarn_user")
    if user == nil or user == "" then
        txn:set_var("txn.tarn_authz", "deny")
        return
    end
    local path = txn.sf:path()
    local kind, model, action = classify(path)
    if kind == "refuse" then
        txn:done(txn:reply{ status = 400, headers = { ["content-type"] = { "text/plain" } },
                            body = "request path not in canonical form (no %-escapes, ';', '//', '.' or '..' segments, trailing '/')\n" })
        return
    end
    if kind == "server" then
        txn:set_var("txn.tarn_authz", "allow")
    elseif kind == "index" then
        txn:set_var("txn.tarn_authz", "index")
    elseif kind == "model" then
        local allowed = ask(user, model, action)
        if allowed == nil then
            txn:set_var("txn.tarn_authz", "unavailable")
        else
            txn:set_var("txn.tarn_authz", allowed and "allow" or "deny")
        end
    else
        txn:set_var("txn.tarn_authz", "deny")
    end
end

local function reply(applet, status, content_type, body)
    applet:set_status(status)
    applet:add_header("content-type", content_type)
    applet:add_header("content-length", tostring(#body))
    applet:start_response()
    applet:send(body)
end

-- POST /v2/repository/index: Triton's index, keeping only the models the user may `list`.
local function repository_index(applet)
    local user = applet:get_var("txn.tarn_user")
    local request_body = applet:receive() or ""
    local client = core.httpclient()
    local res = client:post{
        url = INDEX_URL .. "/v2/repository/index",
        headers = { ["X-TARN-Index-Secret"] = { INDEX_SECRET }, ["Content-Type"] = { "application/json" } },
        body = request_body,
        timeout = TIMEOUT_MS * 5,
    }
    if not res or res.status ~= 200 then
        reply(applet, 502, "text/plain", "model repository index unavailable\n")
        return
    end
    local entries, names = {}, {}
    for entry in res.body:gmatch("%b{}") do
        local name = entry:match('"name"%s*:%s*"(.-)"')
        if name then
            entries[#entries + 1] = entry
            names[#names + 1] = name
        end
    end
    local answers = ask_many(user, names, "list")
    if answers == nil then
        reply(applet, 503, "text/plain", "authorization unavailable\n")
        return
    end
    local kept = {}
    for i, entry in ipairs(entries) do
        if answers[i] then kept[#kept + 1] = entry end
    end
    reply(applet, 200, "application/json", "[" .. table.concat(kept, ",") .. "]")
end

core.register_action("tarn_authz", { "http-req" }, enforce, 0)
core.register_service("tarn_repository_index", "http", repository_index)

-- Shared with tarn_authz_grpc.lua (loaded after this file into the same Lua state).
tarn_authz_helpers = { ask = ask, ask_many = ask_many }
