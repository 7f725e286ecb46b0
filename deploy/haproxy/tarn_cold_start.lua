-- tarn_cold_start.lua: hold a request for a model scaled to zero (issue 16) until a copy serves it.
--
-- The frontend (render_model_routes.py) sets txn.tarn_slot to the model's slot backend (from
-- the model map) and txn.tarn_model_backend to the deployment's backend, then runs this
-- action. When the slot has a usable server it returns at once. Otherwise it holds the
-- request: it tells gateway-sync (POST /cold-start on loopback; gateway-sync publishes
-- ModelDemanded for tarn-am, which loads one copy), looks again every POLL_MS (core.msleep
-- yields: a held request costs no busy loop), tells gateway-sync again every SIGNAL_S, and
-- lets the request go on as soon as the slot has an UP server. After WAIT_S it gives up and
-- sets txn.tarn_cold to "expired"; the frontend answers 503 with Retry-After.
--
-- Settings (global `setenv`): TARN_COLD_START_URL (gateway-sync, e.g. http://127.0.0.1:8095),
-- TARN_COLD_START_WAIT_S (60), TARN_COLD_START_POLL_MS (250), TARN_COLD_START_SIGNAL_S (2),
-- TARN_COLD_START_TOKEN (gateway-sync's API token, if it has one).

local URL = (os.getenv("TARN_COLD_START_URL") or "http://127.0.0.1:8095"):gsub("/+$", "")
local WAIT_S = tonumber(os.getenv("TARN_COLD_START_WAIT_S") or "") or 60
local POLL_MS = math.max(10, math.floor(tonumber(os.getenv("TARN_COLD_START_POLL_MS") or "") or 250))
local SIGNAL_S = tonumber(os.getenv("TARN_COLD_START_SIGNAL_S") or "") or 2
local TOKEN = os.getenv("TARN_COLD_START_TOKEN") or ""
local REPORT_TIMEOUT_MS = 1000

-- Names as gateway-sync accepts them; anything else is never sent (nor held).
local function safe(name)
    return name ~= nil and #name <= 128 and name:match("^[A-Za-z0-9][A-Za-z0-9_.%-]*$") ~= nil
end

local function now_s()
    local t = core.now()
    return t.sec + t.usec / 1e6
end

-- Best effort: a gateway-sync that does not answer only delays the demand to the next signal.
local function send(backend, model, event, waited_s)
    local headers = { ["Content-Type"] = { "application/json" } }
    if TOKEN ~= "" then headers["X-TARN-Token"] = { TOKEN } end
    local ok, res = pcall(function()
        return core.httpclient():post{
            url = URL .. "/cold-start",
            headers = headers,
            body = string.format('{"backend":"%s","model":"%s","event":"%s","waited_ms":%d}', backend, model, event,
                math.floor(waited_s * 1000)),
            timeout = REPORT_TIMEOUT_MS,
        }
    end)
    if not ok or not res or res.status >= 500 or res.status == 0 then return nil end
    if res.status == 401 or res.status == 404 or res.status == 422 then
        core.Warning("tarn_cold_start: gateway-sync refused " .. event .. " for " .. model .. " (" .. res.status
            .. "): " .. (res.body or ""):sub(1, 200))
    end
    return res.status
end

-- In a task of its own, so a slow or absent gateway-sync never delays the request held.
local function report(backend, model, event, waited_s)
    core.register_task(function() send(backend, model, event, waited_s) end)
end

local function usable(txn, slot)
    local n = txn.f:nbsrv(slot)
    return n ~= nil and tonumber(n) > 0
end

local function hold(txn)
    local slot = txn:get_var("txn.tarn_slot")
    if slot == nil or usable(txn, slot) then return end
    local model, backend = txn:get_var("txn.tarn_model"), txn:get_var("txn.tarn_model_backend")
    if not safe(model) or not safe(backend) or not safe(slot) then return end
    local started = now_s()
    local signalled = started
    report(backend, model, "held", 0)
    while not usable(txn, slot) do
        local t = now_s()
        if t - started >= WAIT_S then
            txn:set_var("txn.tarn_cold", "expired")
            report(backend, model, "expired", t - started)
            return
        end
        if t - signalled >= SIGNAL_S then
            signalled = t
            report(backend, model, "waiting", t - started)
        end
        core.msleep(POLL_MS)
    end
    txn:set_var("txn.tarn_cold", "served")
    report(backend, model, "served", now_s() - started)
end

core.register_action("tarn_cold_start", { "http-req" }, hold, 0)
