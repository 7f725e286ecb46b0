package io.tarn.knox.ha;

import org.apache.knox.gateway.ha.provider.HaServiceConfig;
import org.apache.knox.gateway.ha.provider.URLManager;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Knox's URL manager for the TRITON role: the backends are the instances tarn-gateway-sync
 * registers in ZooKeeper (see {@link InstanceDirectory}), balanced round robin.
 *
 * <p>Knox picks it through ServiceLoader for an HaProvider entry named TRITON that sets
 * {@code zookeeperEnsemble}. Knox asks {@link #getActiveURL()} for each request and, with
 * {@code enableLoadBalancing=true}, calls {@link #makeNextActiveURLAvailable()} after it;
 * on a connection failure it calls {@link #markFailed(String)} with the request's URI and
 * asks again, and the failed instance is passed over for a short while.
 */
public class TritonURLManager implements URLManager {
  public static final String ROLE = "TRITON";
  public static final String DEFAULT_NAMESPACE = "/services/triton";
  /** How long a dispatch failure keeps an instance out of the rotation (unless it is the last). */
  static final long FAILED_HOLD_MS = Long.getLong("tarn.knox.failedHoldMs", 5_000L);
  /** How long setConfig waits for the first read of ZooKeeper (topology deployment waits on it). */
  static final long FIRST_READ_WAIT_MS = Long.getLong("tarn.knox.firstReadWaitMs", 10_000L);
  private static final Logger LOG = LoggerFactory.getLogger(TritonURLManager.class);

  private final AtomicInteger cursor = new AtomicInteger();
  private final Map<String, Long> failedUntilNanos = new ConcurrentHashMap<>();
  private volatile InstanceDirectory directory;

  @Override
  public boolean supportsConfig(HaServiceConfig config) {
    String ensemble = config.getZookeeperEnsemble();
    return ROLE.equalsIgnoreCase(config.getServiceName()) && ensemble != null && !ensemble.trim().isEmpty();
  }

  @Override
  public void setConfig(HaServiceConfig config) {
    InstanceDirectory shared = InstanceDirectory.shared(config.getZookeeperEnsemble(), config.getZookeeperNamespace());
    if (!shared.awaitFirstRead(FIRST_READ_WAIT_MS)) {
      LOG.warn("No answer from ZooKeeper {} within {} ms; TRITON starts with no instances and keeps watching",
          config.getZookeeperEnsemble(), FIRST_READ_WAIT_MS);
    }
    directory = shared;
  }

  @Override
  public String getActiveURL() {
    List<String> urls = getURLs();
    return Rotation.pick(urls, cursor.get(), recentlyFailed());
  }

  @Override
  public void setActiveURL(String url) {
    int index = getURLs().indexOf(InstanceRecord.normalise(url));
    if (index >= 0) {
      cursor.set(index);
    }
  }

  @Override
  public List<String> getURLs() {
    InstanceDirectory current = directory;
    return current == null ? Collections.<String>emptyList() : current.urls();
  }

  /** The topology's own URLs for TRITON, if any, are not used: ZooKeeper is the truth. */
  @Override
  public void setURLs(List<String> urls) {
    if (urls != null && !urls.isEmpty()) {
      LOG.info("Ignoring the topology's TRITON URLs {}: instances come from ZooKeeper", urls);
    }
  }

  /** Knox passes the failed request's full URI, not the instance's base URL. */
  @Override
  public void markFailed(String requestUri) {
    long until = System.nanoTime() + FAILED_HOLD_MS * 1_000_000L;
    for (String url : getURLs()) {
      if (InstanceRecord.sameOrigin(url, requestUri)) {
        failedUntilNanos.put(url, until);
        LOG.info("TRITON instance {} failed a request; passing over it for {} ms", url, FAILED_HOLD_MS);
      }
    }
    InstanceDirectory current = directory;
    if (current != null) {
      current.refreshSoon();
    }
  }

  @Override
  public void makeNextActiveURLAvailable() {
    cursor.incrementAndGet();
  }

  private Set<String> recentlyFailed() {
    if (failedUntilNanos.isEmpty()) {
      return Collections.emptySet();
    }
    long now = System.nanoTime();
    Set<String> failed = new HashSet<>();
    for (Map.Entry<String, Long> entry : failedUntilNanos.entrySet()) {
      if (entry.getValue() - now > 0) {
        failed.add(entry.getKey());
      } else {
        failedUntilNanos.remove(entry.getKey(), entry.getValue());
      }
    }
    return failed;
  }
}
