package io.tarn.knox.ha;

import io.tarn.knox.authz.OipRoute;
import org.apache.http.client.methods.HttpRequestBase;
import org.apache.http.client.methods.HttpUriRequest;
import org.apache.knox.gateway.ha.dispatch.ConfigurableHADispatch;
import org.apache.knox.gateway.ha.provider.HaServiceConfig;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import java.io.IOException;
import java.net.URI;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Knox's HA dispatch for TRITON (service.xml's {@code ha-classname}): Knox's own load balancing
 * and failover, then, for a request naming a model, the instance is moved to one that holds the
 * model. Knox's URL manager cannot do it: it picks a URL without seeing the request.
 */
public class TritonHaDispatch extends ConfigurableHADispatch {
  private static final Logger LOG = LoggerFactory.getLogger(TritonHaDispatch.class);
  private final AtomicInteger cursor = new AtomicInteger();
  private volatile InstanceDirectory directory;

  @Override
  protected void executeRequest(HttpUriRequest outbound, HttpServletRequest inbound, HttpServletResponse response)
      throws IOException {
    routeToModel(outbound);
    super.executeRequest(outbound, inbound, response);
  }

  private void routeToModel(HttpUriRequest outbound) {
    URI uri = outbound.getURI();
    OipRoute route = OipRoute.classify(uri.getRawPath());
    InstanceDirectory instances = directory();
    if (route.model == null || instances == null || !(outbound instanceof HttpRequestBase)) {
      return;
    }
    String chosen = InstanceRecord.normalise(uri.toString());
    List<String> holders = instances.holders(route.model);
    String target = ModelRouting.target(chosen, holders, cursor.getAndIncrement());
    if (target != null && !target.equals(chosen)) {
      String query = uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery();
      ((HttpRequestBase) outbound).setURI(URI.create(target + uri.getRawPath() + query));
      LOG.debug("TRITON: {} for model {} goes to {} (holders {})", chosen, route.model, target, holders);
    }
  }

  private InstanceDirectory directory() {
    InstanceDirectory current = directory;
    if (current == null && getHaProvider() != null) {
      HaServiceConfig config = getHaProvider().getHaDescriptor().getServiceConfig(getServiceRole());
      if (config != null && config.getZookeeperEnsemble() != null && !config.getZookeeperEnsemble().trim().isEmpty()) {
        current = InstanceDirectory.shared(config.getZookeeperEnsemble(), config.getZookeeperNamespace());
        directory = current;
      }
    }
    return current;
  }
}
