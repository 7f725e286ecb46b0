package io.tarn.knox.authz;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URL;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * tarn-authz's {@code /authorize}, asked as a trusted caller: the gateway token in
 * {@code X-TARN-Token}, the Knox-authenticated user in {@code X-TARN-User}, the user's groups
 * in {@code X-TARN-Groups}, the client's address as Knox saw it in {@code X-Forwarded-For} (what
 * authz audits as cliIP, believed from the gateway token only). Every failure to get a decision becomes
 * {@link AuthzUnavailableException} here and nowhere else.
 */
public class AuthzClient {
  static final int MAX_BATCH = 1000;
  private static final int MAX_BODY = 1 << 20;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final String baseUrl;
  private final String gatewayToken;
  private final int timeoutMs;
  private final String rangerService;
  private final String deployment;

  public AuthzClient(String baseUrl, String gatewayToken, int timeoutMs, String rangerService, String deployment) {
    this.baseUrl = baseUrl.replaceAll("/+$", "");
    this.gatewayToken = gatewayToken;
    this.timeoutMs = timeoutMs;
    this.rangerService = blankToNull(rangerService);
    this.deployment = blankToNull(deployment);
  }

  /** May {@code user} (with {@code groups}) do {@code action} on {@code model}? */
  public boolean allowed(String user, Collection<String> groups, String model, String action, String client)
      throws AuthzUnavailableException {
    StringBuilder url = new StringBuilder(baseUrl).append("/authorize?model=").append(encode(model))
        .append("&action=").append(encode(action));
    if (rangerService != null) {
      url.append("&service=").append(encode(rangerService));
    }
    if (deployment != null) {
      url.append("&deployment=").append(encode(deployment));
    }
    Answer answer = exchange("GET", url.toString(), user, groups, client, null);
    if (answer.status == 400) {
      return false; // authz refuses the question (e.g. an over-long name): deny, as HAProxy does
    }
    String body = answer.body.trim();
    if (answer.status != 200 || !(body.equals("true") || body.equals("false"))) {
      throw new AuthzUnavailableException("authz answered " + answer.status + ": " + abbreviate(body));
    }
    return body.equals("true");
  }

  /** One decision per model, in order (the batch form of /authorize). */
  public List<Boolean> allowedEach(String user, Collection<String> groups, List<String> models, String action,
                                   String client) throws AuthzUnavailableException {
    List<Boolean> answers = new ArrayList<>(models.size());
    for (int start = 0; start < models.size(); start += MAX_BATCH) {
      List<String> chunk = models.subList(start, Math.min(models.size(), start + MAX_BATCH));
      ObjectNode request = JSON.createObjectNode();
      ArrayNode checks = request.putArray("checks");
      for (String model : chunk) {
        checks.addObject().put("model", model).put("action", action);
      }
      if (rangerService != null) {
        request.put("service", rangerService);
      }
      if (deployment != null) {
        request.put("deployment", deployment);
      }
      byte[] payload;
      try {
        payload = JSON.writeValueAsBytes(request);
      } catch (IOException e) {
        throw new AuthzUnavailableException("cannot write the batch request", e);
      }
      Answer answer = exchange("POST", baseUrl + "/authorize", user, groups, client, payload);
      if (answer.status != 200) {
        throw new AuthzUnavailableException("authz answered " + answer.status + ": " + abbreviate(answer.body));
      }
      String[] lines = answer.body.trim().isEmpty() ? new String[0] : answer.body.trim().split("\n");
      if (lines.length != chunk.size()) {
        throw new AuthzUnavailableException("authz answered " + lines.length + " decisions for " + chunk.size());
      }
      for (String line : lines) {
        String decision = line.trim();
        if (!decision.equals("true") && !decision.equals("false")) {
          throw new AuthzUnavailableException("authz answered " + abbreviate(decision));
        }
        answers.add(decision.equals("true"));
      }
    }
    return answers;
  }

  /**
   * Decisions served from the cache, for authz's {@code /audit/summary} (at most MAX_BATCH a call).
   * Returns false when authz refused them as malformed (they are not worth sending again).
   */
  public boolean reportHits(List<CacheHits.Hits> hits) throws AuthzUnavailableException {
    ObjectNode request = JSON.createObjectNode();
    ArrayNode entries = request.putArray("entries");
    for (CacheHits.Hits h : hits) {
      ObjectNode entry = entries.addObject().put("user", h.user).put("model", h.model).put("action", h.action)
          .put("allowed", h.allowed).put("client", h.client).put("count", h.count).put("first_ms", h.firstMs)
          .put("last_ms", h.lastMs);
      ArrayNode groups = entry.putArray("groups");
      h.groups.forEach(groups::add);
    }
    if (rangerService != null) {
      request.put("service", rangerService);
    }
    if (deployment != null) {
      request.put("deployment", deployment);
    }
    byte[] payload;
    try {
      payload = JSON.writeValueAsBytes(request);
    } catch (IOException e) {
      throw new AuthzUnavailableException("cannot write the audit summary", e);
    }
    Answer answer = exchange("POST", baseUrl + "/audit/summary", null, java.util.Collections.<String>emptyList(),
        null, payload);
    if (answer.status == 400 || answer.status == 422) {
      return false;
    }
    if (answer.status != 200) {
      throw new AuthzUnavailableException("authz answered " + answer.status + ": " + abbreviate(answer.body));
    }
    return true;
  }

  private Answer exchange(String method, String url, String user, Collection<String> groups, String client,
                          byte[] payload) throws AuthzUnavailableException {
    HttpURLConnection connection = null;
    try {
      connection = (HttpURLConnection) new URL(url).openConnection();
      connection.setRequestMethod(method);
      connection.setConnectTimeout(timeoutMs);
      connection.setReadTimeout(timeoutMs);
      connection.setUseCaches(false);
      connection.setInstanceFollowRedirects(false);
      connection.setRequestProperty("X-TARN-Token", gatewayToken);
      if (user != null) {
        connection.setRequestProperty("X-TARN-User", user);
      }
      if (client != null && !client.isEmpty()) {
        connection.setRequestProperty("X-Forwarded-For", client);
      }
      if (!groups.isEmpty()) {
        connection.setRequestProperty("X-TARN-Groups", String.join(",", groups));
      }
      connection.setRequestProperty("Accept", "text/plain");
      if (payload != null) {
        connection.setDoOutput(true);
        connection.setRequestProperty("Content-Type", "application/json");
        connection.setFixedLengthStreamingMode(payload.length);
        try (OutputStream out = connection.getOutputStream()) {
          out.write(payload);
        }
      }
      int status = connection.getResponseCode();
      InputStream stream = status >= 400 ? connection.getErrorStream() : connection.getInputStream();
      return new Answer(status, read(stream));
    } catch (IOException e) {
      if (connection != null) {
        connection.disconnect(); // a half-read connection must not go back to the keep-alive pool
      }
      throw new AuthzUnavailableException("cannot reach authz at " + baseUrl + ": " + e, e);
    }
  }

  private static String read(InputStream stream) throws IOException {
    if (stream == null) {
      return "";
    }
    try (InputStream in = stream) {
      ByteArrayOutputStream body = new ByteArrayOutputStream();
      byte[] buffer = new byte[4096];
      int n;
      while ((n = in.read(buffer)) > 0) {
        if (body.size() + n > MAX_BODY) {
          throw new IOException("answer larger than " + MAX_BODY + " bytes");
        }
        body.write(buffer, 0, n);
      }
      return new String(body.toByteArray(), StandardCharsets.UTF_8);
    }
  }

  private static String encode(String value) {
    try {
      return URLEncoder.encode(value, "UTF-8").replace("+", "%20");
    } catch (java.io.UnsupportedEncodingException impossible) {
      throw new IllegalStateException(impossible);
    }
  }

  private static String blankToNull(String value) {
    return value == null || value.trim().isEmpty() ? null : value.trim();
  }

  private static String abbreviate(String text) {
    String oneLine = text.replaceAll("\\s+", " ").trim();
    return oneLine.length() > 200 ? oneLine.substring(0, 200) + "..." : oneLine;
  }

  private static final class Answer {
    final int status;
    final String body;

    Answer(int status, String body) {
      this.status = status;
      this.body = body;
    }
  }
}
