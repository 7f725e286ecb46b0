package io.tarn.knox.ha;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.util.Collections;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;

/**
 * One znode written by tarn-gateway-sync, reduced to the base URL Knox dispatches to.
 * The node name is {@code host:port}; the data is JSON with at least {@code url},
 * {@code host} and {@code port}. Pure: no I/O.
 */
public final class InstanceRecord {
  private static final ObjectMapper JSON = new ObjectMapper();

  private InstanceRecord() {
  }

  /**
   * The instance's base URL ({@code http://host:port}, no trailing slash), or null when the
   * node describes no usable instance (then it is skipped, never routed to).
   */
  public static String baseUrl(String nodeName, byte[] data) {
    if (data != null && data.length > 0) {
      JsonNode record;
      try {
        record = JSON.readTree(data);
      } catch (IOException e) {
        return null; // a node with data that is not our JSON is not ours to route to
      }
      if (record == null || !record.isObject()) {
        return null;
      }
      String fromUrl = normalise(text(record, "url"));
      if (fromUrl != null) {
        return fromUrl;
      }
      String host = text(record, "host");
      JsonNode port = record.get("port");
      if (host != null && port != null && port.canConvertToInt()) {
        return normalise("http://" + bracketed(host) + ":" + port.asInt());
      }
    }
    return nodeName.indexOf(':') > 0 ? normalise("http://" + nodeName) : null;
  }

  /**
   * The models the instance holds (the record's {@code models}), or null when the record does
   * not say (then the instance is taken to serve any model).
   */
  public static Set<String> models(byte[] data) {
    JsonNode record;
    try {
      record = data == null || data.length == 0 ? null : JSON.readTree(data);
    } catch (IOException e) {
      return null;
    }
    JsonNode list = record == null || !record.isObject() ? null : record.get("models");
    if (list == null || !list.isArray()) {
      return null;
    }
    Set<String> models = new TreeSet<>();
    for (JsonNode model : list) {
      if (model.isTextual()) {
        models.add(model.asText());
      }
    }
    return Collections.unmodifiableSet(models);
  }

  private static String text(JsonNode record, String field) {
    JsonNode value = record.get(field);
    return value != null && value.isTextual() && !value.asText().trim().isEmpty() ? value.asText().trim() : null;
  }

  private static String bracketed(String host) {
    return host.indexOf(':') >= 0 && !host.startsWith("[") ? "[" + host + "]" : host;
  }

  /** An http(s) URL with a host and a port, reduced to scheme://host:port; else null. */
  static String normalise(String url) {
    if (url == null) {
      return null;
    }
    URI uri;
    try {
      uri = new URI(url);
    } catch (URISyntaxException e) {
      return null;
    }
    String scheme = uri.getScheme() == null ? null : uri.getScheme().toLowerCase(Locale.ROOT);
    if (!"http".equals(scheme) && !"https".equals(scheme) || uri.getHost() == null) {
      return null;
    }
    int port = uri.getPort() > 0 ? uri.getPort() : ("https".equals(scheme) ? 443 : 80);
    if (port > 65535) {
      return null;
    }
    return scheme + "://" + bracketed(uri.getHost().replaceAll("^\\[|\\]$", "")) + ":" + port;
  }

  /** Whether a dispatched request URI (what Knox hands to markFailed) went to this base URL. */
  static boolean sameOrigin(String baseUrl, String requestUri) {
    String origin = normalise(requestUri);
    return origin != null && origin.equals(baseUrl);
  }
}
