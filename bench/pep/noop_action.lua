-- bench/pep's "lua-noop": what any Lua action costs HAProxy per request. The same name and
-- the same fetches as tarn_authz.lua's action (user variable, path, client address), and it
-- allows everything: no classification, cache or audit.
core.register_action("tarn_authz", { "http-req" }, function(txn)
    local _ = { txn:get_var("txn.tarn_user"), txn.sf:path(), txn.f:src() }
    txn:set_var("txn.tarn_authz", "allow")
end, 0)
core.register_service("tarn_repository_index", "http", function(applet)
    applet:set_status(503)
    applet:start_response()
end)
