package org.tarn.oracle;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.ranger.authorization.hadoop.config.RangerPluginConfig;
import org.apache.ranger.authorization.utils.JsonUtils;
import org.apache.ranger.plugin.model.RangerPolicy;
import org.apache.ranger.plugin.model.RangerServiceDef;
import org.apache.ranger.plugin.policyengine.RangerAccessRequest.ResourceElementMatchingScope;
import org.apache.ranger.plugin.policyengine.RangerAccessRequest.ResourceMatchingScope;
import org.apache.ranger.plugin.policyengine.RangerAccessRequestImpl;
import org.apache.ranger.plugin.policyengine.RangerAccessResourceImpl;
import org.apache.ranger.plugin.policyengine.RangerAccessResult;
import org.apache.ranger.plugin.policyengine.RangerPluginContext;
import org.apache.ranger.plugin.policyengine.RangerPolicyEngineImpl;
import org.apache.ranger.plugin.util.RangerAccessRequestUtil;
import org.apache.ranger.plugin.util.RangerRoles;
import org.apache.ranger.plugin.util.RangerUserStore;
import org.apache.ranger.plugin.util.ServicePolicies;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Date;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;

/**
 * Apache Ranger's own policy engine as an oracle for tarn-authz's differential tests.
 *
 * <pre>
 *   evaluate IN.json OUT.json          decide every request of every suite in IN.json
 *   write-payloads IN.json OUTDIR      write ServicePolicies / RangerRoles / RangerUserStore as Ranger serializes them
 * </pre>
 *
 * IN.json is one suite or {"suites": [suite, ...]}; a suite is
 * {serviceDef?, policies: ServicePolicies, roles?: RangerRoles, userStore?: RangerUserStore, requests?: [...]},
 * a request {resource: {name: value}, accessType, user, userGroups, resourceElementMatchingScopes?,
 * resourceMatchingScope?, accessTime? (epoch ms)}. OUT.json mirrors the input's shape:
 * {"results": [{isAllowed, isAudited, policyId}, ...]} per suite, or {"error": "..."} for a suite Ranger rejects.
 */
public final class RangerOracle {
    private static final ObjectMapper MAPPER = JsonUtils.getMapper();

    private RangerOracle() {
    }

    public static void main(String[] args) throws IOException {
        if (args.length != 3 || !(args[0].equals("evaluate") || args[0].equals("write-payloads"))) {
            System.err.println("usage: evaluate IN.json OUT.json | write-payloads IN.json OUTDIR");
            System.exit(2);
        }
        JsonNode input = MAPPER.readTree(new File(args[1]));
        boolean batch = input.has("suites");
        ArrayNode suites = batch ? (ArrayNode) input.get("suites") : MAPPER.createArrayNode().add(input);

        if (args[0].equals("evaluate")) {
            RangerPluginConfig config = pluginConfig(firstServiceType(suites));
            ArrayNode out = MAPPER.createArrayNode();
            for (JsonNode suite : suites) {
                out.add(evaluateSuite(suite, config));
            }
            JsonNode result = batch ? MAPPER.createObjectNode().set("suites", out) : out.get(0);
            Files.writeString(Path.of(args[2]), MAPPER.writeValueAsString(result), StandardCharsets.UTF_8);
        } else {
            Path dir = Path.of(args[2]);
            for (int i = 0; i < suites.size(); i++) {
                writePayloads(suites.get(i), batch ? dir.resolve("suite-" + i) : dir);
            }
        }
    }

    private static String firstServiceType(ArrayNode suites) {
        for (JsonNode suite : suites) {
            JsonNode def = serviceDefNode(suite);
            if (def != null && def.hasNonNull("name")) {
                return def.get("name").asText();
            }
        }
        return "triton";
    }

    /** One plugin configuration for the whole run; each suite gets its own plugin context and engine. */
    private static RangerPluginConfig pluginConfig(String serviceType) {
        RangerPluginConfig config = new RangerPluginConfig(serviceType, null, "tarn-oracle", "tarn", "on-prem", null);
        // The audit-result cache is keyed by the resource alone (not user, access type or time): a live plugin's
        // audit flag can depend on the requests it saw before. The oracle answers each request on its own.
        config.getPolicyEngineOptions().cacheAuditResults = false;
        return config;
    }

    private static JsonNode serviceDefNode(JsonNode suite) {
        JsonNode policies = suite.get("policies");
        if (policies != null && policies.hasNonNull("serviceDef")) {
            return policies.get("serviceDef");
        }
        return suite.get("serviceDef");
    }

    private static ServicePolicies servicePolicies(JsonNode suite) throws IOException {
        ServicePolicies sp = MAPPER.treeToValue(suite.get("policies"), ServicePolicies.class);
        if (sp.getServiceDef() == null && suite.hasNonNull("serviceDef")) {
            sp.setServiceDef(MAPPER.treeToValue(suite.get("serviceDef"), RangerServiceDef.class));
        }
        if (sp.getServiceName() == null) {
            sp.setServiceName(sp.getServiceDef() != null ? sp.getServiceDef().getName() : "triton");
        }
        if (sp.getPolicyVersion() == null) {
            sp.setPolicyVersion(1L);
        }
        return sp;
    }

    private static RangerRoles roles(JsonNode suite, String serviceName) throws IOException {
        RangerRoles roles = suite.hasNonNull("roles") ? MAPPER.treeToValue(suite.get("roles"), RangerRoles.class) : new RangerRoles();
        if (roles.getServiceName() == null) {
            roles.setServiceName(serviceName);
        }
        if (roles.getRoleVersion() == null) {
            roles.setRoleVersion(-1L);
        }
        return roles;
    }

    private static ObjectNode evaluateSuite(JsonNode suite, RangerPluginConfig config) {
        ObjectNode out = MAPPER.createObjectNode();
        try {
            ServicePolicies sp = servicePolicies(suite);
            RangerRoles roles = roles(suite, sp.getServiceName());
            RangerUserStore userStore = suite.hasNonNull("userStore")
                    ? MAPPER.treeToValue(suite.get("userStore"), RangerUserStore.class) : null;
            RangerPluginContext context = new RangerPluginContext(config);
            RangerPolicyEngineImpl engine = new RangerPolicyEngineImpl(sp, context, roles);
            ArrayNode results = out.putArray("results");
            for (JsonNode raw : suite.path("requests")) {
                RangerAccessResult result = engine.evaluatePolicies(request(raw, userStore), RangerPolicy.POLICY_TYPE_ACCESS, null);
                ObjectNode r = results.addObject();
                r.put("isAllowed", result.getIsAllowed());
                r.put("isAudited", result.getIsAudited());
                r.put("policyId", result.getPolicyId());
            }
        } catch (Exception | LinkageError e) {
            out.removeAll();
            out.put("error", e.toString());
        }
        return out;
    }

    private static RangerAccessRequestImpl request(JsonNode raw, RangerUserStore userStore) {
        Map<String, Object> elements = new HashMap<>();
        raw.path("resource").fields().forEachRemaining(e -> elements.put(e.getKey(), e.getValue().isNull() ? null : e.getValue().asText()));
        Set<String> groups = new LinkedHashSet<>();
        raw.path("userGroups").forEach(g -> groups.add(g.asText()));
        String user = raw.hasNonNull("user") ? raw.get("user").asText() : null;
        String accessType = raw.hasNonNull("accessType") ? raw.get("accessType").asText() : null;

        RangerAccessRequestImpl request = new RangerAccessRequestImpl(new RangerAccessResourceImpl(elements), accessType, user, groups, null);
        if (raw.hasNonNull("accessTime")) {
            request.setAccessTime(new Date(raw.get("accessTime").asLong()));
        }
        if (raw.hasNonNull("resourceMatchingScope")) {
            request.setResourceMatchingScope(ResourceMatchingScope.valueOf(raw.get("resourceMatchingScope").asText()));
        }
        if (raw.has("resourceElementMatchingScopes")) {
            Map<String, ResourceElementMatchingScope> scopes = new HashMap<>();
            raw.get("resourceElementMatchingScopes").fields()
                    .forEachRemaining(e -> scopes.put(e.getKey(), ResourceElementMatchingScope.valueOf(e.getValue().asText())));
            request.setResourceElementMatchingScopes(scopes);
        }
        if (userStore != null) {
            RangerAccessRequestUtil.setRequestUserStoreInContext(request.getContext(), userStore);
        }
        return request;
    }

    private static void writePayloads(JsonNode suite, Path dir) throws IOException {
        Files.createDirectories(dir);
        ServicePolicies sp = servicePolicies(suite);
        if (sp.getPolicyUpdateTime() == null) {
            sp.setPolicyUpdateTime(new Date());
        }
        Files.writeString(dir.resolve("policies.json"), JsonUtils.objectToJson(sp), StandardCharsets.UTF_8);
        if (suite.hasNonNull("roles")) {
            RangerRoles roles = roles(suite, sp.getServiceName());
            Files.writeString(dir.resolve("roles.json"), JsonUtils.objectToJson(roles), StandardCharsets.UTF_8);
        }
        if (suite.hasNonNull("userStore")) {
            RangerUserStore store = MAPPER.treeToValue(suite.get("userStore"), RangerUserStore.class);
            Files.writeString(dir.resolve("userstore.json"), JsonUtils.objectToJson(store), StandardCharsets.UTF_8);
        }
    }
}
