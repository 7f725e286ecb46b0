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
-- (an internal listener that reaches Triton's unfiltered index; see the template),
-- TARN_AUTHZ_AUDIT_SUMMARY_MS (default 5000).
--
-- Audit: authz audits what it decides; each question carries the end client's address (the
-- connection's source) as X-Forwarded-For, which authz believes from the gateway token only.
-- Decisions served from the cache are counted per (user, action, model, decision, client) and
-- a task posts the counts to authz's /audit/summary every TARN_AUTHZ_AUDIT_SUMMARY_MS, which
-- audits each as one event with event_count (Ranger's audit summarisation). A hit costs one
-- table update; counts authz did not take are kept for the next round (up to HITS_MAX keys).
--
-- HAProxy's own decision cache (the template's tarn_decisions table) answers repeated allows
-- on plain model paths without this action. The action stores there an allow it decided for
-- the key the configuration built (txn.tarn_key, when its txn.tarn_model and txn.tarn_action
-- are the ones `classify` found), and one Lua state (thread 1's) adds the hits HAProxy counted
-- in tarn_decision_hits to the summaries.

local AUTHZ_URL = os.getenv("TARN_AUTHZ_URL") or "http://127.0.0.1:8096"
local TOKEN = os.getenv("TARN_AUTHZ_GATEWAY_TOKEN") or ""
local CACHE_TTL_S = tonumber(os.getenv("TARN_AUTHZ_CACHE_TTL_S") or "2") or 2
local TIMEOUT_MS = tonumber(os.getenv("TARN_AUTHZ_TIMEOUT_MS") or "1000") or 1000
local INDEX_URL = os.getenv("TARN_AUTHZ_INDEX_URL") or ""
local INDEX_SECRET = os.getenv("TARN_AUTHZ_INDEX_SECRET") or ""
local SUMMARY_MS = math.max(100, tonumber(os.getenv("TARN_AUTHZ_AUDIT_SUMMARY_MS") or "5000") or 5000)
local CACHE_MAX = 50000
local HITS_MAX = 100000
local SUMMARY_BATCH = 1000

-- Decisions by user, action and model; each HAProxy thread has its own Lua state and cache.
local cache, cache_size = {}, 0

local function now_s()
    local t = core.now()
    return t.sec + t.usec / 1e6
end

-- allowed, now, expires; nil when not cached.
local function cache_get(key)
    local hit = cache[key]
    if hit then
        local now = now_s()
        if hit.expires > now then return hit.allowed, now, hit.expires end
    end
    return nil
end

-- Cache hits not yet reported, by decision, cache key and client address (nested, so a hit
-- builds no string): { count, first_s, last_s, user, action, model, allowed, client, key }.
local hits, hits_size, hits_dropped = { [true] = {}, [false] = {} }, 0, 0

local function add_hits(allowed, key, client, h)
    local by_client = hits[allowed][key]
    if by_client == nil then
        by_client = {}
        hits[allowed][key] = by_client
    end
    by_client[client] = h
    hits_size = hits_size + 1
end

-- n hits (one, unless HAProxy's cache counted them) between first and last.
local function count_hit(key, user, action, model, allowed, client, last, n, first)
    n, first = n or 1, first or last
    local by_client = hits[allowed][key]
    local h = by_client and by_client[client]
    if h then
        h[1], h[3] = h[1] + n, last
    elseif hits_size < HITS_MAX then
        add_hits(allowed, key, client, { n, first, last, user, action, model, allowed, client, key })
    else
        hits_dropped = hits_dropped + n
    end
end

local function cache_put(key, allowed)
    if CACHE_TTL_S <= 0 then return end
    if cache_size >= CACHE_MAX then
        cache, cache_size = {}, 0
    end
    if cache[key] == nil then cache_size = cache_size + 1 end
    local expires = now_s() + CACHE_TTL_S
    cache[key] = { allowed = allowed, expires = expires }
    return expires
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

local function authz_headers(user, client, extra)
    local headers = { ["X-TARN-Token"] = { TOKEN }, ["X-TARN-User"] = { user }, ["X-Forwarded-For"] = { client } }
    for k, v in pairs(extra or {}) do headers[k] = { v } end
    return headers
end

-- true / false, or nil when authz could not answer, and until when the answer may be cached
-- (nil: not at all). client: the end client's address.
local function ask(user, model, action, client)
    local key = user .. "\0" .. action .. "\0" .. model
    local cached, now, expires = cache_get(key)
    if cached ~= nil then
        count_hit(key, user, action, model, cached, client, now)
        return cached, expires
    end
    local http = core.httpclient()
    local res = http:get{
        url = AUTHZ_URL .. "/authorize?action=" .. action .. "&model=" .. url_encode(model),
        headers = authz_headers(user, client, { ["Accept"] = "text/plain" }),
        timeout = TIMEOUT_MS,
    }
    if not res or res.status ~= 200 then
        if res and res.status == 400 then return false end -- authz rejects the question: deny
        return nil
    end
    local allowed = res.body == "true"
    return allowed, cache_put(key, allowed)
end

-- The decisions for many models at once (one batch request for those not cached).
local function ask_many(user, models, action, client)
    local answers, missing = {}, {}
    for i, model in ipairs(models) do
        local key = user .. "\0" .. action .. "\0" .. model
        local cached, now = cache_get(key)
        if cached == nil then
            missing[#missing + 1] = i
        else
            answers[i] = cached
            count_hit(key, user, action, model, cached, client, now)
        end
    end
    if #missing == 0 then return answers end
    local checks = {}
    for n, i in ipairs(missing) do
        checks[n] = '{"model":' .. json_string(models[i]) .. ',"action":"' .. action .. '"}'
    end
    local http = core.httpclient()
    local res = http:post{
        url = AUTHZ_URL .. "/authorize",
        headers = authz_headers(user, client, { ["Accept"] = "text/plain", ["Content-Type"] = "application/json" }),
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

-- HAProxy's cache keeps whole seconds: the allow is stored until the last whole second before
-- it expires, and only for the key the configuration built from the same model and action.
local function offer_to_haproxy_cache(txn, model, action, expires)
    local until_s = math.floor(expires)
    if until_s > core.now().sec and txn:get_var("txn.tarn_key") ~= nil
        and txn:get_var("txn.tarn_model") == model and txn:get_var("txn.tarn_action") == action then
        txn:set_var("txn.tarn_cache_until", until_s)
    end
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
        local allowed, expires = ask(user, model, action, txn.f:src() or "")
        if allowed == nil then
            txn:set_var("txn.tarn_authz", "unavailable")
        else
            txn:set_var("txn.tarn_authz", allowed and "allow" or "deny")
            if allowed and expires then offer_to_haproxy_cache(txn, model, action, expires) end
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
    local answers = ask_many(user, names, "list", applet.f:src() or "")
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

local function hits_json(h)
    return '{"user":' .. json_string(h[4]) .. ',"action":' .. json_string(h[5]) .. ',"model":' .. json_string(h[6])
        .. ',"allowed":' .. tostring(h[7]) .. ',"client":' .. json_string(h[8]) .. ',"count":' .. string.format("%d", h[1])
        .. ',"first_ms":' .. string.format("%d", math.floor(h[2] * 1000))
        .. ',"last_ms":' .. string.format("%d", math.floor(h[3] * 1000)) .. '}'
end

-- Posts one batch; true when authz took it, false when it refused it (kept no longer), nil
-- when it did not answer (kept for the next round).
local function post_summary(batch)
    local entries = {}
    for _, h in ipairs(batch) do entries[#entries + 1] = hits_json(h) end
    local res = core.httpclient():post{
        url = AUTHZ_URL .. "/audit/summary",
        headers = { ["X-TARN-Token"] = { TOKEN }, ["Content-Type"] = { "application/json" } },
        body = '{"entries":[' .. table.concat(entries, ",") .. ']}',
        timeout = TIMEOUT_MS * 5,
    }
    if res and res.status == 200 then return true end
    if res and res.status >= 400 and res.status < 500 and res.status ~= 401 and res.status ~= 404 then
        core.Alert("tarn_authz: authz refused " .. #batch .. " cache-hit audit entries (" .. res.status .. "): "
            .. (res.body or ""):sub(1, 200))
        return false
    end
    return nil
end

-- The hits HAProxy's own cache served, counted by "client|user|action|model" in
-- tarn_decision_hits: read by one Lua state only (the table is the process's), as each key's
-- increase since the previous read. A key gone from the table between two reads starts again at 0.
local HAPROXY_HITS_READER = (core.thread or 0) <= 1
local haproxy_seen, haproxy_read_s = {}, nil

local function read_haproxy_hits()
    local proxy = core.backends.tarn_decision_hits
    if not HAPROXY_HITS_READER or proxy == nil or proxy.stktable == nil then return end
    local now, seen = now_s(), {}
    local first = haproxy_read_s or now
    for entry, data in pairs(proxy.stktable:dump()) do
        local count = data.http_req_cnt or 0
        local before = haproxy_seen[entry] or 0
        local n = count >= before and count - before or count
        seen[entry] = count
        local client, user, action, model = entry:match("^([^|]*)|(.*)|([^|]*)|([^|]*)$")
        if n > 0 and client then
            count_hit(user .. "\0" .. action .. "\0" .. model, user, action, model, true, client, now, n, first)
        end
    end
    haproxy_seen, haproxy_read_s = seen, now
end

-- Reports the cache hits counted so far; what authz did not answer for goes back into `hits`.
local function report_hits()
    read_haproxy_hits()
    if hits_dropped > 0 then
        core.Alert("tarn_authz: " .. hits_dropped .. " cache hits not audited (more than " .. HITS_MAX
            .. " distinct entries waiting)")
        hits_dropped = 0
    end
    if hits_size == 0 then return end
    local taken = hits
    hits, hits_size = { [true] = {}, [false] = {} }, 0
    local batch = {}
    local function send()
        if post_summary(batch) == nil then
            for _, h in ipairs(batch) do
                local by_client = hits[h[7]][h[9]]
                local newer = by_client and by_client[h[8]]
                if newer then newer[1], newer[2] = newer[1] + h[1], h[2] else add_hits(h[7], h[9], h[8], h) end
            end
        end
        batch = {}
    end
    for _, by_key in pairs(taken) do
        for _, by_client in pairs(by_key) do
            for _, h in pairs(by_client) do
                batch[#batch + 1] = h
                if #batch >= SUMMARY_BATCH then send() end
            end
        end
    end
    if #batch > 0 then send() end
end

core.register_task(function()
    while true do
        core.msleep(SUMMARY_MS)
        report_hits()
    end
end)

core.register_action("tarn_authz", { "http-req" }, enforce, 0)
core.register_service("tarn_repository_index", "http", repository_index)

-- Shared with tarn_authz_grpc.lua (loaded after this file into the same Lua state).
tarn_authz_helpers = { ask = ask, ask_many = ask_many }
