package io.tarn.knox.authz;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import io.tarn.knox.TestServers;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.ServerSocket;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.security.PrivilegedExceptionAction;
import java.util.EnumSet;
import java.util.UUID;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import javax.security.auth.Subject;
import javax.servlet.DispatcherType;
import javax.servlet.Filter;
import javax.servlet.FilterChain;
import javax.servlet.FilterConfig;
import javax.servlet.ServletException;
import javax.servlet.ServletRequest;
import javax.servlet.ServletResponse;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;

import org.apache.knox.gateway.security.GroupPrincipal;
import org.apache.knox.gateway.security.PrimaryPrincipal;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.ContextHandlerCollection;
import org.eclipse.jetty.servlet.FilterHolder;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;
import org.junit.AfterClass;
import org.junit.BeforeClass;
import org.junit.Test;

/**
 * The TarnAuthz filter in a real servlet container, asking a real tarn-authz. In front of it,
 * a stand-in for Knox's authentication runs the chain as a Subject built from X-Test-User and
 * X-Test-Groups (what HeaderPreAuth or Shiro plus a group provider give in Knox); behind it, a
 * servlet stands in for the dispatch to Triton and counts what reaches it.
 */
public class TarnAuthzFilterTest {
  private static final String INDEX = "[{\"name\":\"add_sub\",\"version\":\"1\",\"state\":\"READY\"},"
      + "{\"name\":\"identity\",\"version\":\"1\",\"state\":\"READY\"},{\"name\":\"secret\"}]";
  private static final AtomicInteger BACKEND_HITS = new AtomicInteger();
  private static final String KEY = "knox-test-triton-key-0123456789";
  /** The tarn-gateway-key values the last request reaching the stand-in Triton carried. */
  private static final AtomicReference<List<String>> KEYS_SEEN = new AtomicReference<>();
  private static Server server;
  private static String base;

  @BeforeClass
  public static void startContainer() throws Exception {
    server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    connector.setPort(0);
    server.addConnector(connector);
    ContextHandlerCollection contexts = new ContextHandlerCollection();
    contexts.addHandler(context("/gateway/tarn", TestServers.authzUrl(), TestServers.authzToken(), "2000", KEY));
    contexts.addHandler(context("/gateway/shortcache", TestServers.authzUrl(), TestServers.authzToken(), "300"));
    contexts.addHandler(context("/gateway/down", "http://127.0.0.1:" + closedPort(), TestServers.authzToken(), "2000"));
    contexts.addHandler(context("/gateway/badtoken", TestServers.authzUrl(), "not-the-gateway-token", "2000"));
    server.setHandler(contexts);
    server.start();
    base = "http://127.0.0.1:" + connector.getLocalPort();
  }

  @AfterClass
  public static void stopContainer() throws Exception {
    server.stop();
  }

  private static ServletContextHandler context(String path, String authzUrl, String token, String ttlMs) {
    return context(path, authzUrl, token, ttlMs, null);
  }

  private static ServletContextHandler context(String path, String authzUrl, String token, String ttlMs,
                                               String tritonKey) {
    ServletContextHandler context = new ServletContextHandler();
    context.setContextPath(path);
    context.addFilter(new FilterHolder(new SubjectFromHeaders()), "/*", EnumSet.of(DispatcherType.REQUEST));
    FilterHolder authz = new FilterHolder(TarnAuthzFilter.class);
    authz.setInitParameter(TarnAuthzFilter.URL, authzUrl);
    authz.setInitParameter(TarnAuthzFilter.TOKEN, token);
    authz.setInitParameter(TarnAuthzFilter.CACHE_TTL_MS, ttlMs);
    authz.setInitParameter(TarnAuthzFilter.ROUTE_PREFIX, "/triton");
    if (tritonKey != null) {
      authz.setInitParameter(TarnAuthzFilter.KEY, tritonKey);
    }
    context.addFilter(authz, "/*", EnumSet.of(DispatcherType.REQUEST));
    context.addServlet(new ServletHolder(new Triton()), "/*");
    return context;
  }

  private static int closedPort() throws IOException {
    try (ServerSocket socket = new ServerSocket(0)) {
      return socket.getLocalPort();
    }
  }

  /** Runs the rest of the chain as the Subject Knox's authentication would have made. */
  static final class SubjectFromHeaders implements Filter {
    @Override
    public void init(FilterConfig config) {
    }

    @Override
    public void destroy() {
    }

    @Override
    public void doFilter(final ServletRequest request, final ServletResponse response, final FilterChain chain)
        throws IOException, ServletException {
      String user = ((HttpServletRequest) request).getHeader("X-Test-User");
      if (user == null) {
        chain.doFilter(request, response);
        return;
      }
      Subject subject = new Subject();
      subject.getPrincipals().add(new PrimaryPrincipal(user));
      String groups = ((HttpServletRequest) request).getHeader("X-Test-Groups");
      if (groups != null) {
        for (String group : groups.split(";")) {
          subject.getPrincipals().add(new GroupPrincipal(group));
        }
      }
      try {
        Subject.doAs(subject, (PrivilegedExceptionAction<Void>) () -> {
          chain.doFilter(request, response);
          return null;
        });
      } catch (java.security.PrivilegedActionException e) {
        throw new ServletException(e.getException());
      }
    }
  }

  /** Stands in for the dispatch to Triton. */
  static final class Triton extends HttpServlet {
    private static final long serialVersionUID = 1L;

    @Override
    protected void service(HttpServletRequest request, HttpServletResponse response) throws IOException {
      BACKEND_HITS.incrementAndGet();
      KEYS_SEEN.set(Collections.list(request.getHeaders(GatewayKeyRequest.HEADER)));
      byte[] body = (request.getRequestURI().endsWith("/v2/repository/index") ? INDEX : "reached")
          .getBytes(StandardCharsets.UTF_8);
      response.setContentType("application/json");
      response.setContentLength(body.length);
      response.getOutputStream().write(body);
    }
  }

  private static final class Reply {
    final int status;
    final String body;

    Reply(int status, String body) {
      this.status = status;
      this.body = body;
    }
  }

  private static Reply call(String method, String path, String user, String groups) throws IOException {
    return call(method, path, user, groups, null);
  }

  private static Reply call(String method, String path, String user, String groups, String clientKey)
      throws IOException {
    HttpURLConnection connection = (HttpURLConnection) new URL(base + path).openConnection();
    connection.setRequestMethod(method);
    if (clientKey != null) {
      connection.setRequestProperty(GatewayKeyRequest.HEADER, clientKey);
    }
    if (user != null) {
      connection.setRequestProperty("X-Test-User", user);
    }
    if (groups != null) {
      connection.setRequestProperty("X-Test-Groups", groups);
    }
    if (method.equals("POST")) {
      connection.setDoOutput(true);
      try (OutputStream out = connection.getOutputStream()) {
        out.write("{}".getBytes(StandardCharsets.UTF_8));
      }
    }
    int status = connection.getResponseCode();
    InputStream stream = status >= 400 ? connection.getErrorStream() : connection.getInputStream();
    ByteArrayOutputStream body = new ByteArrayOutputStream();
    if (stream != null) {
      try (InputStream in = stream) {
        byte[] buffer = new byte[4096];
        int n;
        while ((n = in.read(buffer)) > 0) {
          body.write(buffer, 0, n);
        }
      }
    }
    return new Reply(status, new String(body.toByteArray(), StandardCharsets.UTF_8));
  }

  private static double authzDecisions() throws IOException {
    HttpURLConnection connection = (HttpURLConnection) new URL(TestServers.authzUrl() + "/metrics").openConnection();
    connection.setRequestProperty("X-TARN-Token", TestServers.authzToken());
    double total = 0;
    try (InputStream in = connection.getInputStream()) {
      ByteArrayOutputStream body = new ByteArrayOutputStream();
      byte[] buffer = new byte[8192];
      int n;
      while ((n = in.read(buffer)) > 0) {
        body.write(buffer, 0, n);
      }
      for (String line : new String(body.toByteArray(), StandardCharsets.UTF_8).split("\n")) {
        if (line.startsWith("tarn_authz_decisions_total{")) {
          total += Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
        }
      }
    }
    return total;
  }

  @Test
  public void tritonGetsTheTopologysKeyNeverTheClients() throws Exception {
    assertEquals(200, call("POST", "/gateway/tarn/triton/v2/models/add_sub/infer", "alice", null, "forged").status);
    assertEquals(Collections.singletonList(KEY), KEYS_SEEN.get());
    assertEquals(200, call("GET", "/gateway/tarn/triton/v2/health/ready", "alice", null, "forged").status);
    assertEquals(Collections.singletonList(KEY), KEYS_SEEN.get());
    // Without a key in the topology a client's copy is still dropped (a restricted Triton refuses).
    assertEquals(200, call("POST", "/gateway/shortcache/triton/v2/models/add_sub/infer", "alice", null, KEY).status);
    assertEquals(Collections.emptyList(), KEYS_SEEN.get());
  }

  @Test
  public void anAllowedUserReachesTriton() throws Exception {
    Reply reply = call("POST", "/gateway/tarn/triton/v2/models/add_sub/infer", "alice", null);
    assertEquals(200, reply.status);
    assertEquals("reached", reply.body);
  }

  @Test
  public void aDeniedUserGets403AndTritonSeesNothing() throws Exception {
    int before = BACKEND_HITS.get();
    assertEquals(403, call("POST", "/gateway/tarn/triton/v2/models/add_sub/infer", "mallory", null).status);
    assertEquals(403, call("POST", "/gateway/tarn/triton/v2/models/identity/infer", "alice", null).status);
    assertEquals(403, call("GET", "/gateway/tarn/triton/v2/models/add_sub", "bob", null).status);
    assertEquals(before, BACKEND_HITS.get());
  }

  @Test
  public void theSubjectsGroupsReachAuthz() throws Exception {
    assertEquals(200, call("GET", "/gateway/tarn/triton/v2/models/identity/config", "dave", "staff;analysts").status);
    assertEquals(403, call("GET", "/gateway/tarn/triton/v2/models/identity/config", "dave", "staff").status);
    assertEquals(403, call("GET", "/gateway/tarn/triton/v2/models/identity/config", "dave", null).status);
  }

  @Test
  public void aGroupNameWithACommaIsNotSplitIntoGroups() throws Exception {
    assertEquals(403, call("GET", "/gateway/tarn/triton/v2/models/identity", "dave", "x,analysts").status);
  }

  @Test
  public void serverEndpointsNeedOnlyAnAuthenticatedUser() throws Exception {
    assertEquals(200, call("GET", "/gateway/tarn/triton/v2/health/ready", "mallory", null).status);
    assertEquals(200, call("GET", "/gateway/tarn/triton/v2", "mallory", null).status);
    assertEquals(403, call("GET", "/gateway/tarn/triton/v2/health/ready", null, null).status);
  }

  @Test
  public void unmappedPathsAreDeniedEvenToAllowedUsers() throws Exception {
    assertEquals(403, call("GET", "/gateway/tarn/triton/v2/models/add_sub/stats", "alice", null).status);
    assertEquals(403, call("POST", "/gateway/tarn/triton/v2/repository/models/add_sub/load", "alice", null).status);
    assertEquals(403, call("GET", "/gateway/tarn/triton/metrics", "alice", null).status);
  }

  @Test
  public void theRepositoryIndexListsOnlyWhatTheUserMayList() throws Exception {
    Reply carol = call("POST", "/gateway/tarn/triton/v2/repository/index", "carol", null);
    assertEquals(200, carol.status);
    assertEquals(INDEX, carol.body);
    Reply alice = call("POST", "/gateway/tarn/triton/v2/repository/index", "alice", null);
    assertEquals("[{\"name\":\"add_sub\",\"version\":\"1\",\"state\":\"READY\"}]", alice.body);
    assertEquals("[]", call("POST", "/gateway/tarn/triton/v2/repository/index", "mallory", null).body);
  }

  @Test
  public void unreachableAuthzFailsClosedWith503() throws Exception {
    int before = BACKEND_HITS.get();
    assertEquals(503, call("POST", "/gateway/down/triton/v2/models/add_sub/infer", "alice", null).status);
    assertEquals(503, call("POST", "/gateway/down/triton/v2/repository/index", "carol", null).status);
    assertEquals(before + 1, BACKEND_HITS.get()); // only the index, which is read before it is filtered
    assertEquals(200, call("GET", "/gateway/down/triton/v2/health/live", "alice", null).status);
  }

  @Test
  public void aWrongGatewayTokenFailsClosedWith503() throws Exception {
    assertEquals(503, call("POST", "/gateway/badtoken/triton/v2/models/add_sub/infer", "alice", null).status);
  }

  @Test
  public void decisionsAreCachedBriefly() throws Exception {
    String user = "probe-" + UUID.randomUUID();
    double before = authzDecisions();
    for (int i = 0; i < 5; i++) {
      assertEquals(403, call("GET", "/gateway/shortcache/triton/v2/models/identity", user, null).status);
    }
    assertEquals(1.0, authzDecisions() - before, 0.0);
    Thread.sleep(400);
    assertEquals(403, call("GET", "/gateway/shortcache/triton/v2/models/identity", user, null).status);
    assertTrue(authzDecisions() - before >= 2.0);
  }
}
