package io.tarn.knox.authz;

import java.io.ByteArrayOutputStream;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What an Open Inference Protocol path asks for, exactly as HAProxy's action
 * (deploy/haproxy/tarn_authz.lua, {@code classify}) decides it. Pure.
 *
 * <pre>
 *   /v2/models/{m}[/versions/{v}]/infer            infer on m
 *   /v2/models/{m}[/versions/{v}][/|/config|/ready] metadata on m
 *   /v2/repository/index                           the models the user may list
 *   /v2, /v2/, /v2/health/live, /v2/health/ready   any authenticated user
 *   anything else                                  deny
 * </pre>
 * The path is the raw (still percent-encoded) one; only the model name is decoded.
 */
public final class OipRoute {
  public enum Kind { SERVER, INDEX, MODEL, DENY }

  private static final Pattern MODEL_PATH = Pattern.compile("^/v2/models/([^/]+)(.*)$", Pattern.DOTALL);
  private static final Pattern VERSION = Pattern.compile("^/versions/([^/]+)(.*)$", Pattern.DOTALL);
  private static final Pattern ESCAPE = Pattern.compile("%([0-9A-Fa-f]{2})");
  private static final OipRoute SERVER = new OipRoute(Kind.SERVER, null, null);
  private static final OipRoute INDEX = new OipRoute(Kind.INDEX, null, null);
  private static final OipRoute DENY = new OipRoute(Kind.DENY, null, null);

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
    if (path.equals("/v2") || path.equals("/v2/") || path.equals("/v2/health/live") || path.equals("/v2/health/ready")) {
      return SERVER;
    }
    if (path.equals("/v2/repository/index")) {
      return INDEX;
    }
    Matcher modelPath = MODEL_PATH.matcher(path);
    if (!modelPath.matches() || modelPath.group(1).equals("stats")) {
      return DENY;
    }
    String model = modelPath.group(1);
    String rest = modelPath.group(2);
    Matcher version = VERSION.matcher(rest);
    if (version.matches()) {
      rest = version.group(2);
    }
    if (rest.equals("/infer")) {
      return new OipRoute(Kind.MODEL, percentDecode(model), "infer");
    }
    if (rest.isEmpty() || rest.equals("/") || rest.equals("/config") || rest.equals("/ready")) {
      return new OipRoute(Kind.MODEL, percentDecode(model), "metadata");
    }
    return DENY;
  }

  /** %XX to the byte it names, nothing else (as the Lua's url_decode); bytes read as UTF-8. */
  static String percentDecode(String text) {
    Matcher escape = ESCAPE.matcher(text);
    if (!escape.find()) {
      return text;
    }
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    int last = 0;
    do {
      byte[] literal = text.substring(last, escape.start()).getBytes(java.nio.charset.StandardCharsets.UTF_8);
      bytes.write(literal, 0, literal.length);
      bytes.write(Integer.parseInt(escape.group(1), 16));
      last = escape.end();
    } while (escape.find());
    byte[] tail = text.substring(last).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    bytes.write(tail, 0, tail.length);
    return new String(bytes.toByteArray(), java.nio.charset.StandardCharsets.UTF_8);
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
