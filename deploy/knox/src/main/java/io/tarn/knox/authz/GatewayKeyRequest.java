package io.tarn.knox.authz;

import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletRequestWrapper;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;

/**
 * The request as Knox dispatches it to Triton: a client's {@code tarn-gateway-key} is dropped
 * and, when the topology has the deployment's key, Knox's own is added (Triton answers its
 * APIs other than health and metadata only with it). Knox's dispatch copies the headers it
 * reads here.
 */
final class GatewayKeyRequest extends HttpServletRequestWrapper {
  static final String HEADER = "tarn-gateway-key";
  private final String key;

  GatewayKeyRequest(HttpServletRequest request, String key) {
    super(request);
    this.key = key;
  }

  private static boolean ours(String name) {
    return HEADER.equalsIgnoreCase(name);
  }

  @Override
  public String getHeader(String name) {
    return ours(name) ? key : super.getHeader(name);
  }

  @Override
  public Enumeration<String> getHeaders(String name) {
    if (!ours(name)) {
      return super.getHeaders(name);
    }
    return key == null ? Collections.<String>emptyEnumeration() : Collections.enumeration(Collections.singletonList(key));
  }

  @Override
  public Enumeration<String> getHeaderNames() {
    List<String> names = new ArrayList<>();
    for (Enumeration<String> all = super.getHeaderNames(); all != null && all.hasMoreElements(); ) {
      String name = all.nextElement();
      if (!ours(name)) {
        names.add(name);
      }
    }
    if (key != null) {
      names.add(HEADER);
    }
    return Collections.enumeration(names);
  }
}
