package io.tarn.knox.authz;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.knox.gateway.audit.api.Action;
import org.apache.knox.gateway.audit.api.ActionOutcome;
import org.apache.knox.gateway.audit.api.AuditServiceFactory;
import org.apache.knox.gateway.audit.api.Auditor;
import org.apache.knox.gateway.audit.api.ResourceType;
import org.apache.knox.gateway.audit.log4j.audit.AuditConstants;
import org.apache.knox.gateway.security.GroupPrincipal;
import org.apache.knox.gateway.security.SubjectUtils;
import org.apache.knox.gateway.services.GatewayServices;
import org.apache.knox.gateway.services.ServiceType;
import org.apache.knox.gateway.services.security.AliasService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.security.auth.Subject;
import javax.servlet.Filter;
import javax.servlet.FilterChain;
import javax.servlet.FilterConfig;
import javax.servlet.ServletContext;
import javax.servlet.ServletException;
import javax.servlet.ServletRequest;
import javax.servlet.ServletRequestWrapper;
import javax.servlet.ServletResponse;
import javax.servlet.ServletResponseWrapper;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletRequestWrapper;
import javax.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import java.util.TreeSet;

/**
 * Per-model authorization for TRITON through tarn-authz: maps the request path to a model
 * and an action ({@link OipRoute}, the HAProxy action's mapping), asks {@code /authorize} for
 * the Knox-authenticated (effective) user and the Subject's groups, and answers 403 on a deny
 * and 503 when authz gives no answer (fail closed). {@code /v2/repository/index} is passed on
 * and its answer cut down to the models the user may {@code list}.
 *
 * <p>Params (provider params in the topology; Knox lower-cases the names):
 * {@code authz.url} (required), the gateway token from the alias {@code authz.gateway.token.alias}
 * (default {@code tarn.authz.gateway.token}) or else the param {@code authz.gateway.token},
 * {@code authz.timeout.ms} (1000), {@code authz.cache.ttl.ms} (2000), {@code authz.cache.max.entries}
 * (50000), {@code authz.ranger.service} and {@code authz.deployment} (which Ranger service
 * authz answers for; its default when unset). The deployment's Triton key, which Knox adds as
 * {@code tarn-gateway-key} to every request it passes on (a client's copy is dropped), comes
 * from the alias {@code gateway.key.alias} (default {@code tarn.gateway.key}) or else the param
 * {@code gateway.key}; without one Knox adds none, and a restricted Triton refuses.
 */
public class TarnAuthzFilter implements Filter {
  public static final String URL = "authz.url";
  public static final String TOKEN = "authz.gateway.token";
  public static final String TOKEN_ALIAS = "authz.gateway.token.alias";
  public static final String DEFAULT_TOKEN_ALIAS = "tarn.authz.gateway.token";
  public static final String TIMEOUT_MS = "authz.timeout.ms";
  public static final String CACHE_TTL_MS = "authz.cache.ttl.ms";
  public static final String CACHE_MAX_ENTRIES = "authz.cache.max.entries";
  public static final String RANGER_SERVICE = "authz.ranger.service";
  public static final String DEPLOYMENT = "authz.deployment";
  public static final String KEY = "gateway.key";
  public static final String KEY_ALIAS = "gateway.key.alias";
  public static final String DEFAULT_KEY_ALIAS = "tarn.gateway.key";
  static final String ROUTE_PREFIX = "tarn.route.prefix";
  static final String RESOURCE_ROLE = "resource.role";
  static final String LIST = "list";

  private static final Logger LOG = LoggerFactory.getLogger(TarnAuthzFilter.class);
  private static final ObjectMapper JSON = new ObjectMapper();

  private AuthzClient authz;
  private DecisionCache cache;
  private String routePrefix;
  private String gatewayKey;
  private Auditor auditor;

  @Override
  public void init(FilterConfig config) throws ServletException {
    String url = param(config, URL, null);
    if (url == null) {
      throw new ServletException("TarnAuthz: the provider param " + URL + " (tarn-authz's base URL) is required");
    }
    String token = secret(config, TOKEN_ALIAS, DEFAULT_TOKEN_ALIAS, TOKEN);
    if (token == null) {
      throw new ServletException("TarnAuthz: no gateway token: create the alias " + param(config, TOKEN_ALIAS,
          DEFAULT_TOKEN_ALIAS) + " (knoxcli.sh create-alias) or set the provider param " + TOKEN);
    }
    int timeoutMs = intParam(config, TIMEOUT_MS, 1000);
    authz = new AuthzClient(url, token, timeoutMs, param(config, RANGER_SERVICE, null), param(config, DEPLOYMENT, null));
    cache = new DecisionCache(intParam(config, CACHE_TTL_MS, 2000), intParam(config, CACHE_MAX_ENTRIES, 50_000),
        System::nanoTime);
    routePrefix = param(config, ROUTE_PREFIX, "");
    gatewayKey = secret(config, KEY_ALIAS, DEFAULT_KEY_ALIAS, KEY);
    if (gatewayKey == null) {
      LOG.warn("TarnAuthz: no Triton key (alias {} or param {}): a restricted Triton refuses what Knox passes on",
          param(config, KEY_ALIAS, DEFAULT_KEY_ALIAS), KEY);
    }
    try {
      auditor = AuditServiceFactory.getAuditService().getAuditor(AuditConstants.DEFAULT_AUDITOR_NAME,
          AuditConstants.KNOX_SERVICE_NAME, AuditConstants.KNOX_COMPONENT_NAME);
    } catch (RuntimeException | LinkageError noAuditService) {
      auditor = null; // outside a Knox gateway (tests): decisions are still logged
    }
    LOG.info("TarnAuthz for {} asks {} (route {}, cache {} ms)", param(config, RESOURCE_ROLE, "?"), url,
        routePrefix, intParam(config, CACHE_TTL_MS, 2000));
  }

  @Override
  public void destroy() {
  }

  @Override
  public void doFilter(ServletRequest servletRequest, ServletResponse servletResponse, FilterChain chain)
      throws IOException, ServletException {
    HttpServletRequest request = new GatewayKeyRequest((HttpServletRequest) servletRequest, gatewayKey);
    HttpServletResponse response = (HttpServletResponse) servletResponse;
    HttpServletRequest original = original(request);
    String path = OipRoute.servicePath(original.getRequestURI(), original.getContextPath(), routePrefix);
    OipRoute route = OipRoute.classify(path);
    Subject subject = SubjectUtils.getCurrentSubject();
    String user = subject == null ? null : SubjectUtils.getEffectivePrincipalName(subject);
    if (route.kind == OipRoute.Kind.REFUSE) {
      refuse(request, response, HttpServletResponse.SC_BAD_REQUEST, "request path not in canonical form "
          + "(no %-escapes, ';', '//', '.' or '..' segments, trailing '/')", null, route);
      return;
    }
    if (user == null || user.isEmpty()) {
      refuse(request, response, HttpServletResponse.SC_FORBIDDEN, "no authenticated user", null, route);
      return;
    }
    List<String> groups = groupsOf(subject);
    switch (route.kind) {
      case SERVER:
        chain.doFilter(request, response);
        return;
      case MODEL:
        Boolean allowed = decide(user, groups, route.model, route.action);
        if (allowed == null) {
          refuse(request, response, HttpServletResponse.SC_SERVICE_UNAVAILABLE, "authorization unavailable", user, route);
        } else if (allowed) {
          audit(request, ActionOutcome.SUCCESS);
          chain.doFilter(request, response);
        } else {
          refuse(request, response, HttpServletResponse.SC_FORBIDDEN, "forbidden", user, route);
        }
        return;
      case INDEX:
        serveIndex(request, response, chain, user, groups);
        return;
      default:
        refuse(request, response, HttpServletResponse.SC_FORBIDDEN, "forbidden", user, route);
    }
  }

  /** true / false, or null when authz gave no answer. */
  private Boolean decide(String user, List<String> groups, String model, String action) {
    String key = DecisionCache.key(user, groups, action, model);
    Boolean cached = cache.get(key);
    if (cached != null) {
      return cached;
    }
    try {
      boolean allowed = authz.allowed(user, groups, model, action);
      cache.put(key, allowed);
      return allowed;
    } catch (AuthzUnavailableException e) {
      LOG.warn("TarnAuthz: no decision for user {} ({} on {}): {}", user, action, model, e.getMessage());
      return null;
    }
  }

  /** Triton's repository index, keeping only the models the user may list. */
  private void serveIndex(HttpServletRequest request, HttpServletResponse response, FilterChain chain,
                          String user, List<String> groups) throws IOException, ServletException {
    BufferedResponse held = new BufferedResponse(response);
    chain.doFilter(new IdentityEncodingRequest(request), held);
    if (held.errorSent()) {
      return;
    }
    byte[] body = held.body();
    if (held.getStatus() != HttpServletResponse.SC_OK) {
      write(response, held.getStatus(), held.getContentType(), held.contentEncoding(), body);
      return;
    }
    JsonNode entries = held.identityEncoded() ? readJson(body) : null;
    if (entries == null || !entries.isArray()) {
      LOG.warn("TarnAuthz: cannot read Triton's repository index for user {}; refusing it", user);
      writeText(response, HttpServletResponse.SC_BAD_GATEWAY, "model repository index unreadable\n");
      return;
    }
    List<JsonNode> named = new ArrayList<>();
    Map<String, Boolean> listable = new HashMap<>();
    List<String> unknown = new ArrayList<>();
    for (JsonNode entry : entries) {
      JsonNode name = entry.get("name");
      if (name == null || !name.isTextual()) {
        continue; // as the HAProxy action: an entry without a name is not shown
      }
      named.add(entry);
      if (!listable.containsKey(name.asText())) {
        Boolean cached = cache.get(DecisionCache.key(user, groups, LIST, name.asText()));
        listable.put(name.asText(), cached);
        if (cached == null) {
          unknown.add(name.asText());
        }
      }
    }
    try {
      List<Boolean> answers = unknown.isEmpty() ? Collections.<Boolean>emptyList()
          : authz.allowedEach(user, groups, unknown, LIST);
      for (int i = 0; i < unknown.size(); i++) {
        listable.put(unknown.get(i), answers.get(i));
        cache.put(DecisionCache.key(user, groups, LIST, unknown.get(i)), answers.get(i));
      }
    } catch (AuthzUnavailableException e) {
      LOG.warn("TarnAuthz: no list decisions for user {}: {}", user, e.getMessage());
      writeText(response, HttpServletResponse.SC_SERVICE_UNAVAILABLE, "authorization unavailable\n");
      return;
    }
    ArrayNode kept = JSON.createArrayNode();
    for (JsonNode entry : named) {
      if (Boolean.TRUE.equals(listable.get(entry.get("name").asText()))) {
        kept.add(entry);
      }
    }
    write(response, HttpServletResponse.SC_OK, "application/json", null, JSON.writeValueAsBytes(kept));
    audit(request, ActionOutcome.SUCCESS);
  }

  private void refuse(HttpServletRequest request, HttpServletResponse response, int status, String reason,
                      String user, OipRoute route) throws IOException {
    LOG.debug("TarnAuthz: {} {} for user {} ({}): {}", request.getMethod(), request.getRequestURI(), user, route, reason);
    audit(request, status == HttpServletResponse.SC_SERVICE_UNAVAILABLE ? ActionOutcome.UNAVAILABLE : ActionOutcome.FAILURE);
    if (status == HttpServletResponse.SC_SERVICE_UNAVAILABLE) {
      response.setHeader("Retry-After", "1");
    }
    writeText(response, status, reason + "\n");
  }

  private static void writeText(HttpServletResponse response, int status, String text) throws IOException {
    write(response, status, "text/plain; charset=utf-8", null, text.getBytes(StandardCharsets.UTF_8));
  }

  /**
   * The answer is final, so it goes to the container's own response: Knox's rewrite filter
   * wraps the response with a stream that only writes what it is closed with.
   */
  private static void write(HttpServletResponse response, int status, String contentType, String contentEncoding,
                            byte[] body) throws IOException {
    ServletResponse current = response;
    while (current instanceof ServletResponseWrapper) {
      current = ((ServletResponseWrapper) current).getResponse();
    }
    HttpServletResponse target = current instanceof HttpServletResponse ? (HttpServletResponse) current : response;
    target.setStatus(status);
    target.setContentType(contentType);
    if (contentEncoding != null) {
      target.setHeader("Content-Encoding", contentEncoding);
    }
    target.setContentLength(body.length);
    target.getOutputStream().write(body);
    target.flushBuffer();
  }

  private void audit(HttpServletRequest request, String outcome) {
    if (auditor != null) {
      auditor.audit(Action.AUTHORIZATION, request.getRequestURI(), ResourceType.URI, outcome);
    }
  }

  /** The Subject's group names; a name with a comma cannot travel in X-TARN-Groups and is left out. */
  static List<String> groupsOf(Subject subject) {
    TreeSet<String> names = new TreeSet<>();
    for (GroupPrincipal group : subject.getPrincipals(GroupPrincipal.class)) {
      String name = group.getName() == null ? "" : group.getName().trim();
      if (name.isEmpty()) {
        continue;
      }
      if (name.indexOf(',') >= 0) {
        LOG.warn("TarnAuthz: leaving out group {}: a comma cannot be sent to authz", name);
        continue;
      }
      names.add(name);
    }
    return new ArrayList<>(names);
  }

  /** The container's own request: Knox's rewrite filter wraps it and answers the rewritten URI. */
  static HttpServletRequest original(HttpServletRequest request) {
    ServletRequest current = request;
    while (current instanceof ServletRequestWrapper) {
      current = ((ServletRequestWrapper) current).getRequest();
    }
    return current instanceof HttpServletRequest ? (HttpServletRequest) current : request;
  }

  private static JsonNode readJson(byte[] body) {
    try {
      return JSON.readTree(body);
    } catch (IOException e) {
      return null;
    }
  }

  /** The alias named by {@code aliasParam} (topology's, then gateway-wide), else the plain param. */
  private static String secret(FilterConfig config, String aliasParam, String defaultAlias, String plainParam)
      throws ServletException {
    String alias = param(config, aliasParam, defaultAlias);
    ServletContext context = config.getServletContext();
    Object services = context == null ? null : context.getAttribute(GatewayServices.GATEWAY_SERVICES_ATTRIBUTE);
    if (services instanceof GatewayServices) {
      AliasService aliases = ((GatewayServices) services).getService(ServiceType.ALIAS_SERVICE);
      String cluster = (String) context.getAttribute(GatewayServices.GATEWAY_CLUSTER_ATTRIBUTE);
      if (aliases != null) {
        try {
          char[] secret = cluster == null ? aliases.getPasswordFromAliasForGateway(alias)
              : aliases.getPasswordFromAliasForCluster(cluster, alias);
          if (secret == null && cluster != null) {
            secret = aliases.getPasswordFromAliasForGateway(alias);
          }
          if (secret != null && secret.length > 0) {
            return new String(secret);
          }
        } catch (Exception e) {
          throw new ServletException("TarnAuthz: cannot read the alias " + alias, e);
        }
      }
    }
    return param(config, plainParam, null);
  }

  private static String param(FilterConfig config, String name, String fallback) {
    String value = config.getInitParameter(name.toLowerCase(Locale.ROOT));
    return value == null || value.trim().isEmpty() ? fallback : value.trim();
  }

  private static int intParam(FilterConfig config, String name, int fallback) throws ServletException {
    String value = param(config, name, null);
    if (value == null) {
      return fallback;
    }
    try {
      int parsed = Integer.parseInt(value);
      if (parsed < 0) {
        throw new NumberFormatException("negative");
      }
      return parsed;
    } catch (NumberFormatException e) {
      throw new ServletException("TarnAuthz: " + name + " must be a whole number of milliseconds, not " + value);
    }
  }

  /** Asks Triton for an uncompressed index, so it can be read and filtered. */
  private static final class IdentityEncodingRequest extends HttpServletRequestWrapper {
    IdentityEncodingRequest(HttpServletRequest request) {
      super(request);
    }

    private static boolean hidden(String name) {
      return "accept-encoding".equalsIgnoreCase(name);
    }

    @Override
    public String getHeader(String name) {
      return hidden(name) ? null : super.getHeader(name);
    }

    @Override
    public Enumeration<String> getHeaders(String name) {
      return hidden(name) ? Collections.<String>emptyEnumeration() : super.getHeaders(name);
    }

    @Override
    public Enumeration<String> getHeaderNames() {
      List<String> names = new ArrayList<>();
      for (Enumeration<String> all = super.getHeaderNames(); all != null && all.hasMoreElements(); ) {
        String name = all.nextElement();
        if (!hidden(name)) {
          names.add(name);
        }
      }
      return Collections.enumeration(names);
    }
  }
}
