-- tarn_authz_grpc.lua: the gRPC side of the enforcement point (HAProxy 2.6, Lua 5.3), loaded
-- after tarn_authz.lua, whose decision helpers (tarn_authz_helpers: ask, ask_many, the
-- per-thread cache) it shares.
--
-- The action `tarn_authz_grpc` reads the method from the path
-- (/inference.GRPCInferenceService/<Method>) and the model from the request message, which the
-- frontend buffers (option http-buffer-request): the 5-byte gRPC prefix, then protobuf field 1
-- (`model_name` of ModelInferRequest, `name` of the metadata/ready/config/statistics requests,
-- grpc_service.proto). Outcome in txn.tarn_grpc, a reason in txn.tarn_grpc_message:
--   allow        forward to Triton
--   deny         grpc-status 7 PERMISSION_DENIED (also: unmapped method, malformed message)
--   unavailable  grpc-status 14 UNAVAILABLE: authz did not answer (fail closed)
--   too_large    grpc-status 8 RESOURCE_EXHAUSTED: the message is larger than the gateway reads
--
--   ModelInfer                                         -> infer on the model
--   ModelMetadata, ModelReady, ModelConfig, ModelStatistics -> metadata on the model
--   RepositoryIndex  -> Triton's answer with only the models the user may `list`: the action
--                       asks authz (one batch) about Triton's HTTP index and leaves the names
--                       in txn.tarn_grpc_index; the filter tarn_grpc_index rewrites the
--                       response message and keeps Triton's trailers
--   ServerLive, ServerReady, ServerMetadata            -> any authenticated user
--   ModelStreamInfer -> refused: the action runs once, before later messages of the stream
--                       exist, and each of them names its own model
--   anything else (repository load/unload, shared memory, trace, log settings) -> deny
--
-- The model of a model method goes in txn.tarn_grpc_model, which per-model routing's map reads.
--
-- A model name must be seen whole and once: the buffered body must be exactly one message,
-- complete by its own length prefix (Triton parses a unary call's first message alone),
-- uncompressed, well formed, with field 1 present once (protobuf lets a later copy win: two
-- copies are refused). A message over TARN_AUTHZ_GRPC_MAX_MESSAGE bytes (the template keeps
-- HAProxy's buffer above it) is refused as too large.

local helpers = tarn_authz_helpers
local MAX_MESSAGE = tonumber(os.getenv("TARN_AUTHZ_GRPC_MAX_MESSAGE") or "") or 65536
local INDEX_URL = os.getenv("TARN_AUTHZ_INDEX_URL") or ""
local INDEX_SECRET = os.getenv("TARN_AUTHZ_INDEX_SECRET") or ""
local TIMEOUT_MS = tonumber(os.getenv("TARN_AUTHZ_TIMEOUT_MS") or "1000") or 1000
local SERVICE = "/inference.GRPCInferenceService/"

local MODEL_ACTIONS = {
    ModelInfer = "infer", ModelMetadata = "metadata", ModelReady = "metadata",
    ModelConfig = "metadata", ModelStatistics = "metadata",
}
local OPEN_METHODS = { ServerLive = true, ServerReady = true, ServerMetadata = true }

-- A base-128 varint at s[i]: value, next index; nil when truncated or over 10 bytes.
local function varint(s, i)
    local value, shift = 0, 0
    for n = 0, 9 do
        local b = s:byte(i + n)
        if b == nil then return nil end
        value = value | ((b & 0x7f) << shift)
        if b < 0x80 then return value, i + n + 1 end
        shift = shift + 7
    end
    return nil
end

-- Every length-delimited value of field 1 in the protobuf message s; nil when s is not a
-- well-formed message (truncated, a bad key, a group, a length past the end).
local function field1_values(s)
    local found, i, n = {}, 1, #s
    while i <= n do
        local key
        key, i = varint(s, i)
        if key == nil or key >> 3 == 0 then return nil end
        local wire = key & 7
        if wire == 0 then
            local value
            value, i = varint(s, i)
            if value == nil then return nil end
        elseif wire == 1 then
            i = i + 8
        elseif wire == 5 then
            i = i + 4
        elseif wire == 2 then
            local len
            len, i = varint(s, i)
            if len == nil or len < 0 or len > n - i + 1 then return nil end
            if key >> 3 == 1 then found[#found + 1] = s:sub(i, i + len - 1) end
            i = i + len
        else
            return nil
        end
        if i > n + 1 then return nil end
    end
    return found
end

-- The model a request body names: name, or nil and (outcome, reason).
local function model_of(body)
    if #body > MAX_MESSAGE + 5 then
        return nil, "too_large", "tarn: the request message is larger than the gateway reads"
    end
    if #body < 5 then return nil, "deny", "tarn: no complete gRPC message" end
    if body:byte(1) ~= 0 then return nil, "deny", "tarn: compressed messages are not accepted" end
    local length = string.unpack(">I4", body, 2)
    if #body ~= 5 + length then return nil, "deny", "tarn: the request is not exactly one complete message" end
    local names = field1_values(body:sub(6))
    if names == nil then return nil, "deny", "tarn: malformed request message" end
    if #names ~= 1 or names[1] == "" then
        return nil, "deny", "tarn: the request must name exactly one model"
    end
    return names[1]
end

local function decide(txn, outcome, reason)
    txn:set_var("txn.tarn_grpc", outcome)
    if reason then txn:set_var("txn.tarn_grpc_message", reason) end
end

-- The models in Triton's index the user may `list`, newline-separated between newlines (the
-- filter's lookup); nil when authz or Triton did not answer.
local function listable(user, client)
    local res = core.httpclient():post{
        url = INDEX_URL .. "/v2/repository/index",
        headers = { ["X-TARN-Index-Secret"] = { INDEX_SECRET }, ["Content-Type"] = { "application/json" } },
        body = "{}",
        timeout = TIMEOUT_MS * 5,
    }
    if not res or res.status ~= 200 then return nil end
    local names = {}
    for entry in res.body:gmatch("%b{}") do
        local name = entry:match('"name"%s*:%s*"(.-)"')
        if name and not name:find("[\n\\]") then names[#names + 1] = name end
    end
    local answers = helpers.ask_many(user, names, "list", client)
    if answers == nil then return nil end
    local kept = {}
    for i = 1, #names do
        if answers[i] then kept[#kept + 1] = names[i] end
    end
    return "\n" .. table.concat(kept, "\n") .. "\n"
end

local function answer(txn, allowed, denied_reason)
    if allowed == nil then
        decide(txn, "unavailable", "tarn: authorization unavailable")
    elseif allowed then
        decide(txn, "allow")
    else
        decide(txn, "deny", denied_reason)
    end
end

local function enforce_grpc(txn)
    local user = txn:get_var("txn.tarn_user")
    if user == nil or user == "" then return decide(txn, "deny", "tarn: no authenticated user") end
    local path = txn.sf:path()
    local method = path:sub(1, #SERVICE) == SERVICE and path:sub(#SERVICE + 1) or nil
    if method and OPEN_METHODS[method] then return decide(txn, "allow") end
    if method == "RepositoryIndex" then
        local kept = listable(user, txn.f:src() or "")
        if kept then txn:set_var("txn.tarn_grpc_index", kept) end
        return answer(txn, kept and true or nil)
    end
    if method == "ModelStreamInfer" then
        return decide(txn, "deny", "tarn: ModelStreamInfer is not offered through the gateway "
            .. "(each stream message names its own model); use ModelInfer")
    end
    local action = method and MODEL_ACTIONS[method]
    if not action then return decide(txn, "deny", "tarn: this method is not offered through the gateway") end
    local model, outcome, reason = model_of(txn.sf:req_body() or "")
    if model == nil then return decide(txn, outcome, reason) end
    txn:set_var("txn.tarn_grpc_model", model)  -- per-model routing's map key (render_model_routes.py)
    answer(txn, helpers.ask(user, model, action, txn.f:src() or ""), "tarn: " .. user:gsub("[^%w%-%._@]", "?")
        .. " may not " .. action .. " on this model")
end

-- RepositoryIndexResponse keeping only the ModelIndex entries (field 1, name in their field 1)
-- named in `kept`; anything else in the message is dropped.
local function filtered_index(body, kept)
    if #body < 5 or body:byte(1) ~= 0 or #body ~= 5 + string.unpack(">I4", body, 2) then return nil end
    local message, out, i = body:sub(6), {}, 1
    while i <= #message do
        local start, key, len = i
        key, i = varint(message, i)
        if key ~= 10 then return nil end -- field 1, length-delimited: all Triton sends
        len, i = varint(message, i)
        if len == nil or len > #message - i + 1 then return nil end
        local names = field1_values(message:sub(i, i + len - 1))
        if names and #names == 1 and kept:find("\n" .. names[1] .. "\n", 1, true) then
            out[#out + 1] = message:sub(start, i + len - 1)
        end
        i = i + len
    end
    local filtered = table.concat(out)
    return "\0" .. string.pack(">I4", #filtered) .. filtered
end

-- The response side of RepositoryIndex: Triton's answer, filtered. The frontend waits for the
-- whole body (http-response wait-for-body); one that is not whole or not understood becomes
-- an empty index (fail closed). Triton's trailers (grpc-status) pass unchanged.
local IndexFilter = { id = "tarn gRPC index filter", flags = filter.FLT_CFG_FL_HTX }
IndexFilter.__index = IndexFilter

function IndexFilter:new()
    return setmetatable({ done = false }, IndexFilter)
end

function IndexFilter:http_headers(txn, http_msg)
    if http_msg.channel:is_resp() and txn:get_var("txn.tarn_grpc_index") then
        filter.register_data_filter(self, http_msg.channel)
    end
    return filter.CONTINUE
end

function IndexFilter:http_payload(txn, http_msg)
    local body = http_msg:body() or ""
    if self.done then
        http_msg:remove()
        return
    end
    self.done = true
    local kept = txn:get_var("txn.tarn_grpc_index") or "\n"
    local filtered = http_msg:eom() and filtered_index(body, kept) or nil
    http_msg:set(filtered or "\0\0\0\0\0")
end

core.register_action("tarn_authz_grpc", { "http-req" }, enforce_grpc, 0)
core.register_filter("tarn_grpc_index", IndexFilter, function(flt) return flt end)
