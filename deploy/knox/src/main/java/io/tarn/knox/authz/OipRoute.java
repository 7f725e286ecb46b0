package io.tarn.knox.authz;

import java.util.HashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What an Open Inference Protocol path asks for, exactly as HAProxy's action
 * (deploy/haproxy/tarn_authz.lua, {@code classify}) decides it. Pure.
 *
 * <pre>
 *   /v2/models/{m}[/versions/{digits}]/infer|generate|generate_stream  infer on m
 *   /v2/models/{m}[/versions/{digits}][/config|/ready]                metadata on m
 *   /v2/repository/index                           the models the user may list
 *   /v2, /v2/health/live, /v2/health/ready         any authenticated user
 *   a path not in canonical form                   refused (400)
 *   anything else                                  deny
 * </pre>
 * The path is the raw one the client sent. Triton 2.51 (src/http_server.cc) routes the raw path
 * with RE2 FullMatch: case-sensitive, never percent-decoded or cleaned of dot segments, so
 * {@code %69dentity} or {@code identity;x} are other model names to it, while Jetty and Knox's
 * rewriter may decode or normalize before dispatch. A path that any hop could read two ways is
 * therefore refused; a canonical one means the same model to Knox and to Triton.
 */
public final class OipRoute {
  public enum Kind { SERVER, INDEX, MODEL, DENY, REFUSE }

  private static final Pattern MODEL_PATH = Pattern.compile("^/v2/models/([^/]+)(.*)$", Pattern.DOTALL);
  private static final Pattern VERSION = Pattern.compile("^/versions/([0-9]+)(.*)$", Pattern.DOTALL);
  /** RFC 3986 unreserved and sub-delims, ":" "@" "/": no "%", ";", backslash, "#", space or non-ASCII. */
  private static final Pattern CANONICAL_CHARS = Pattern.compile("/[A-Za-z0-9._~!$&'()*+,=:@/-]*");
  private static final Pattern DOT_SEGMENT = Pattern.compile("(^|/)\\.\\.?(/|$)");
  private static final Map<String, String> MODEL_ACTIONS = new HashMap<>();
  private static final OipRoute SERVER = new OipRoute(Kind.SERVER, null, null);
  private static final OipRoute INDEX = new OipRoute(Kind.INDEX, null, null);
  private static final OipRoute DENY = new OipRoute(Kind.DENY, null, null);
  private static final OipRoute REFUSE = new OipRoute(Kind.REFUSE, null, null);

  static {
    for (String metadata : new String[] {"", "/config", "/ready"}) {
      MODEL_ACTIONS.put(metadata, "metadata");
    }
    for (String infer : new String[] {"/infer", "/generate", "/generate_stream"}) {
      MODEL_ACTIONS.put(infer, "infer");
    }
  }

  public final Kind kind;
  public final String model;
  public final String action;

  private OipRoute(Kind kind, String model, String action) {
    this.kind = kind;
    this.model = model;
    this.action = action;
  }

  public static OipRoute classify(String path) {
    if (path == null) {
      return DENY;
    }
    if (!canonical(path)) {
      return REFUSE;
    }
    if (path.equals("/v2") || path.equals("/v2/health/live") || path.equals("/v2/health/ready")) {
      return SERVER;
    }
    if (path.equals("/v2/repository/index")) {
      return INDEX;
    }
    Matcher modelPath = MODEL_PATH.matcher(path);
    if (!modelPath.matches() || modelPath.group(1).equals("stats")) {
      return DENY;
    }
    String rest = modelPath.group(2);
    Matcher version = VERSION.matcher(rest);
    if (version.matches()) {
      rest = version.group(2);
    }
    String action = MODEL_ACTIONS.get(rest);
    return action == null ? DENY : new OipRoute(Kind.MODEL, modelPath.group(1), action);
  }

  /** As the Lua's {@code canonical}: safe characters only, no empty, "." or ".." segment, no trailing "/". */
  static boolean canonical(String path) {
    if (!CANONICAL_CHARS.matcher(path).matches() || path.contains("//")) {
      return false;
    }
    return (path.equals("/") || !path.endsWith("/")) && !DOT_SEGMENT.matcher(path).find();
  }

  /** The service-relative path: the request URI after the topology's context path and the route prefix. */
  public static String servicePath(String requestUri, String contextPath, String routePrefix) {
    if (requestUri == null) {
      return null;
    }
    String path = requestUri;
    if (contextPath != null && !contextPath.isEmpty()) {
      if (!path.startsWith(contextPath)) {
        return null;
      }
      path = path.substring(contextPath.length());
    }
    if (routePrefix != null && !routePrefix.isEmpty()) {
      if (!path.equals(routePrefix) && !path.startsWith(routePrefix + "/")) {
        return null;
      }
      path = path.substring(routePrefix.length());
    }
    return path;
  }

  /** The literal start of a Knox resource pattern ("/triton/**?**" gives "/triton"). */
  public static String routePrefix(String resourcePattern) {
    if (resourcePattern == null) {
      return "";
    }
    StringBuilder prefix = new StringBuilder();
    for (String segment : resourcePattern.split("\\?", 2)[0].split("/")) {
      if (segment.isEmpty()) {
        continue;
      }
      if (segment.contains("*") || segment.contains("{")) {
        break;
      }
      prefix.append('/').append(segment);
    }
    return prefix.toString();
  }

  @Override
  public String toString() {
    return kind == Kind.MODEL ? action + " on " + model : kind.name().toLowerCase(java.util.Locale.ROOT);
  }
}
